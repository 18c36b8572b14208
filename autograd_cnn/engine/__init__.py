"""The engine, in files a reader can hold; ``autograd_cnn.autograd`` is the import path users write.

- ``modes.py``: grad mode, anomaly mode and the module scope, each held per thread (a context variable);
- ``function.py``: ``Function``, its ``Context`` (the graph node) and ``apply``: saved values and
  their versions, one output or several;
- ``walk.py``: the backward walk (order, accumulation, hooks, freeing), ``backward`` and ``grad``;
- ``graph.py``: reading a recorded graph (``graph_of``) and the order backward runs its nodes in;
- ``anomaly.py``: ``detect_anomaly``'s checks;
- ``unbroadcast.py``: ``SumTo`` and ``BroadcastTo``, the engine's own pair of ops.
"""
