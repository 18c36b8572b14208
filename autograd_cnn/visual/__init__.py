"""Pictures of backpropagation with Graphviz.

    from autograd_cnn import visual
    visual.draw(loss, kind="both")                 # a graphviz.Digraph, shown inline in Jupyter
    visual.save(loss, "out/graph.svg", kind="backward", flow=True)
    visual.backprop_frames(loss, "out/steps")       # one picture per backward step + index.html

``forward_graph`` shows tensors (name, shape, values, gradient) and ops; ``backward_graph``
one node per backward step with its derivative rule, where gradients are summed back to a
broadcast shape (SumTo) and where the gradients of a tensor used twice are added ("+");
``kind="both"`` puts them side by side with dashed lines from each saved tensor to the
step that reads it. ``collapse="module"`` draws one node per ``nn.Module`` layer.
Nothing here changes the graph, the tensors or their ``.grad``.
"""
from __future__ import annotations

from .frames import backprop_frames
from .gradcheck import gradcheck_graph
from .pictures import backward_graph, both_graph, draw, forward_graph, save
from .plots import plot_confusion_matrix, plot_mistakes, plot_training, show_augmentations
from .render import RenderError
from .trace import Trace, record_gradients, trace

__all__ = ["RenderError", "Trace", "backprop_frames", "backward_graph", "both_graph", "draw",
           "forward_graph", "gradcheck_graph", "plot_confusion_matrix", "plot_mistakes", "plot_training",
           "record_gradients", "save", "show_augmentations", "trace"]
