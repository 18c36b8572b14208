"""Graph pictures: exact DOT structure of small graphs, gradient states, collapse, rendering, frames."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import autograd, visual
from autograd_cnn.engine import walk
from autograd_cnn.visual import labels as vlabels

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")


def parse(g) -> tuple[dict[str, str], set[tuple[str, str]], list[tuple[str, str, str]]]:
    """Nodes {id: attribute text}, edge set {(tail, head)} and edges with attributes, from a Digraph."""
    nodes, edges, edge_list = {}, set(), []
    for line in g.body:
        line = line.strip()
        m = re.match(r"^(\w+) -> (\w+)(?: \[(.*)\])?$", line, re.S)
        if m:
            edges.add((m.group(1), m.group(2)))
            edge_list.append((m.group(1), m.group(2), m.group(3) or ""))
            continue
        m = re.match(r"^(\w+) \[(.*)\]$", line, re.S)
        if m and m.group(1) not in ("node", "edge", "graph"):
            nodes[m.group(1)] = m.group(2)
    return nodes, edges, edge_list


def small_graph():
    """L = sum(relu(x * w + b) * x): b broadcast over rows, x used twice."""
    x = ag.tensor(np.array([[-2.0, -1.0, 0.5], [1.0, 2.0, 3.0]]), requires_grad=True, name="x")
    w = ag.tensor(np.full((2, 3), 0.5), requires_grad=True, name="w")
    b = ag.tensor(np.array([0.1, -0.2, 0.3]), requires_grad=True, name="b")
    loss = (F.relu(x * w + b) * x).sum()
    loss.name = "L"
    return x, w, b, loss


def test_forward_graph_structure_is_exact(backend):
    x, w, b, loss = small_graph()
    nodes, edges, _ = parse(visual.forward_graph(loss))
    assert set(nodes) == {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "op0", "op1", "op2", "op3", "op4"}
    assert edges == {("t0", "op0"), ("t1", "op0"), ("op0", "t2"), ("t2", "op1"), ("t3", "op1"), ("op1", "t4"),
                     ("t4", "op2"), ("op2", "t5"), ("t5", "op3"), ("t0", "op3"), ("op3", "t6"), ("t6", "op4"),
                     ("op4", "t7")}
    for node_id, text in [("t0", "<B>x</B>"), ("t1", "<B>w</B>"), ("t3", "<B>b</B>"), ("t7", "<B>L</B>"),
                          ("op0", "<B>Mul</B>"), ("op1", "<B>Add</B>"), ("op2", "<B>ReLU</B>"),
                          ("op3", "<B>Mul</B>"), ("op4", "<B>Sum</B>"), ("t2", "<B>Mul output</B>")]:
        assert text in nodes[node_id], (node_id, nodes[node_id])
    # parameters, inputs and the output are styled apart
    assert vlabels.FILL["parameter"] in nodes["t0"] and "penwidth=2" in nodes["t0"]
    assert vlabels.FILL["output"] in nodes["t7"] and "peripheries=2" in nodes["t7"]
    assert "(2, 3) float64" in nodes["t0"] and "[−2, −1, 0.5, 1, 2, 3]" in nodes["t0"]


def test_backward_graph_structure_is_exact(backend):
    x, w, b, loss = small_graph()
    nodes, edges, edge_list = parse(visual.backward_graph(loss))
    assert set(nodes) == {"seed", "bop4", "bop3", "bop2", "bop1", "bop0", "sop1_1", "acct0", "gt0", "gt1", "gt3"}
    assert edges == {("seed", "bop4"), ("bop4", "bop3"), ("bop3", "bop2"), ("bop3", "acct0"), ("bop2", "bop1"),
                     ("bop1", "bop0"), ("bop1", "sop1_1"), ("sop1_1", "gt3"), ("bop0", "acct0"), ("bop0", "gt1"),
                     ("acct0", "gt0")}
    assert "∂L/∂a = ∂L/∂y · b" in nodes["bop3"] and "∂L/∂b = ∂L/∂y · a" in nodes["bop3"]
    assert "[y &gt; 0]" in nodes["bop2"]
    assert "(2, 3) → (3)" in nodes["sop1_1"]  # the broadcast b's gradient summed back
    assert ">+</FONT>" in nodes["acct0"] and "2 uses of x" in nodes["acct0"]
    labels = {(t, h): a for t, h, a in edge_list}
    assert 'label="(2, 3)"' in labels[("bop1", "sop1_1")] and 'label="(3)"' in labels[("sop1_1", "gt3")]


class Cube(autograd.Function):
    """y = a³, an op a user adds without a written rule"""
    @staticmethod
    def forward(ctx, a, n):
        ctx.save_for_backward(a)
        return a ** 3

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return gy * 3 * a * a, None


class Square(Cube):
    """y = a², with its rule written beside it"""
    rules = ("∂L/∂a = ∂L/∂y · 2a", "n gets no gradient")

    @staticmethod
    def forward(ctx, a, n):
        ctx.save_for_backward(a)
        return a * a

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return gy * 2 * a, None


def test_an_op_class_carries_its_own_picture_rule():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    n = ag.tensor([3.0])
    nodes, _, _ = parse(visual.backward_graph(Cube.apply(x, n).sum()))
    assert "∂L/∂a = ∂L/∂y · ∂y/∂a   (Cube.backward)" in nodes["bop0"]  # no rule written: the chain rule
    assert Cube.rule_lines(2, (True, False)) == ["∂L/∂a = ∂L/∂y · ∂y/∂a   (Cube.backward)"]
    nodes, _, _ = parse(visual.backward_graph(Square.apply(x, n).sum()))
    assert "∂L/∂a = ∂L/∂y · 2a" in nodes["bop0"] and "n gets no gradient" not in nodes["bop0"]


def test_softmax_cross_entropy_rule_is_the_lecture_one():
    z = ag.tensor([[1.0, 2.0, 0.5]], requires_grad=True, name="z")
    loss = F.cross_entropy(z, ag.tensor([1]))
    text = visual.backward_graph(loss).source
    assert "∂L/∂z = (softmax(z) − onehot) · ∂L/∂y" in text


def test_gradient_states_not_yet_zero_and_values():
    x = ag.tensor([-1.0, -2.0], requires_grad=True, name="x")
    w = ag.tensor([3.0, 4.0], requires_grad=True, name="w")
    h = x * w
    h.retain_grad()
    y = F.relu(h)  # every input negative: the gradient is zero, not missing
    loss = (y + w).sum()
    before, _, _ = parse(visual.forward_graph(loss))
    assert "not computed yet" in before["t0"] and "dashed" in before["t0"]
    assert "not computed yet" in before["t2"]
    loss.backward()
    after, _, _ = parse(visual.forward_graph(loss))
    assert "∂L/∂· = 0 everywhere (2)" in after["t0"] and vlabels.ZERO_COLOR in after["t0"]
    assert "∂L/∂· [1, 1]" in after["t1"] and vlabels.GRAD_COLOR in after["t1"]  # w: through the relu 0, plus 1
    assert "= 0 everywhere" in after["t2"]  # h kept its (zero) gradient through retain_grad()
    assert "not kept" in after[next(k for k, v in after.items() if "ReLU output" in v)]
    assert "not computed yet" not in "".join(after.values())
    assert "∂L/∂L = 1" in next(v for v in after.values() if "Sum output" in v)  # the output holds the seed


def test_values_for_small_tensors_stats_for_big_ones():
    a = ag.tensor(np.arange(8.0), requires_grad=True, name="a")
    big = ag.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True, name="big")
    loss = a.sum() + big.mean()
    nodes, _, _ = parse(visual.forward_graph(loss))
    text = "".join(nodes.values())
    assert "[0, 1, 2, 3, 4, 5, 6, 7]" in text
    assert "min 0  mean 5.5  max 11" in text


def test_names_come_from_the_module_path_and_op_parameters_show():
    x = ag.tensor(np.ones((2, 3)), name="images")
    w = ag.tensor(np.ones((4, 3)), requires_grad=True)
    b = ag.tensor(np.zeros(4), requires_grad=True)
    with autograd.scope("features.0"):
        z = F.linear(x, w, b)
    loss = z.sum(axis=1).mean()
    nodes, _, _ = parse(visual.forward_graph(loss, rankdir="LR"))
    text = "".join(nodes.values())
    assert "<B>features.0.weight</B>" in text and "<B>features.0.bias</B>" in text and "<B>images</B>" in text
    assert "axis=1" in text
    assert "rankdir=LR" in visual.forward_graph(loss, rankdir="LR").source
    assert vlabels.FILL["input"] in next(v for v in nodes.values() if "images" in v)


def snapshot(loss):
    tr = visual.trace(loss)
    ops = [(id(op.ctx), op.ctx.freed, tuple(id(t.tensor) for t in op.inputs),
            None if op.ctx.saved is None else tuple(id(s) for s in op.ctx.saved)) for op in tr.ops]
    tensors = [(id(t.tensor), t.tensor.numpy().copy(), id(t.tensor.grad),
                None if t.tensor.grad is None else t.tensor.grad.numpy().copy()) for t in tr.tensors]
    return ops, tensors


def assert_same(a, b):
    assert a[0] == b[0]
    for (i1, v1, g1, gv1), (i2, v2, g2, gv2) in zip(a[1], b[1]):
        assert i1 == i2 and g1 == g2
        np.testing.assert_array_equal(v1, v2)
        assert (gv1 is None) == (gv2 is None)
        if gv1 is not None:
            np.testing.assert_array_equal(gv1, gv2)


@needs_dot
def test_drawing_changes_nothing(tmp_path):
    x, w, b, loss = small_graph()
    for stage in ("before", "after"):
        before = snapshot(loss)
        for kind in ("forward", "backward", "both"):
            visual.draw(loss, kind=kind, flow=True)
            visual.draw(loss, kind=kind, collapse="module")
        visual.save(loss, tmp_path / f"{stage}.svg", kind="both", flow=True)
        visual.backprop_frames(loss, tmp_path / stage)
        assert_same(before, snapshot(loss))
        assert not walk.step_hooks(), "a picture left its step hook behind"
        if stage == "before":
            loss.backward(retain_graph=True)
            np.testing.assert_allclose(b.grad.numpy(), [1.0, 2.0, 3.5])  # x where relu(xw+b) > 0, once


def test_both_has_two_clusters_and_saved_tensor_bridges():
    x, w, b, loss = small_graph()
    g = visual.draw(loss, kind="both")
    assert "subgraph cluster_forward" in g.source and "subgraph cluster_backward" in g.source
    nodes, edges, edge_list = parse(g)
    bridges = {(t, h) for t, h, a in edge_list if "style=dashed" in a}
    # Mul(x, w) saved both inputs, the second Mul the relu's output t5 and x; ReLU saves
    # something of its own (a mask or its output), bridged from its op node or a tensor.
    assert {("t0", "bop0"), ("t1", "bop0"), ("t5", "bop3"), ("t0", "bop3")} <= bridges
    assert {h for _, h in bridges} == {"bop0", "bop2", "bop3"}  # Add and Sum save nothing
    # backward edges are drawn head-first (dir=back), mirroring the forward graph's ranks
    assert ("bop3", "bop4") in edges and ("gt0", "acct0") in edges


def test_bridges_vanish_once_backward_freed_the_saved_values():
    x, w, b, loss = small_graph()
    loss.backward()
    _, _, edge_list = parse(visual.draw(loss, kind="both"))
    assert not [e for e in edge_list if "style=dashed" in e[2]]


def test_after_a_freeing_backward_the_graph_keeps_its_shape_without_the_values():
    x, w, b, loss = small_graph()
    before, before_edges, _ = parse(visual.forward_graph(loss))
    loss.backward()
    after, after_edges, _ = parse(visual.forward_graph(loss))
    assert set(after) == set(before) and after_edges == before_edges  # one node per tensor, as before
    for t in ("t2", "t4", "t5", "t6"):  # what the ops made: shape and dtype, the values freed
        assert "(2, 3) float64" in after[t] and "(freed by backward)" in after[t], after[t]
    assert "[−2, −1, 0.5, 1, 2, 3]" in after["t0"]  # leaves keep theirs


def test_flow_width_and_colour_follow_the_gradient_size():
    small = ag.tensor([1e-7, 1e-7], requires_grad=True, name="small")
    large = ag.tensor([10.0, 10.0], requires_grad=True, name="large")
    loss = (small * small).sum() + (large * large).sum()
    _, _, edge_list = parse(visual.backward_graph(loss, flow=True))
    nodes, _, _ = parse(visual.backward_graph(loss))
    grad_of = {re.search(r"<B>(\w+)\.grad", v).group(1): k for k, v in nodes.items() if ".grad" in v}
    into = {h: a for t, h, a in edge_list}
    to_small, to_large = into[grad_of["small"]], into[grad_of["large"]]
    width = lambda a: float(re.search(r"penwidth=\"?([\d.]+)", a).group(1))
    assert width(to_small) < 1.0 < 4.0 < width(to_large)
    assert "‖g‖=28" in to_large  # 10 + 10 from the two uses of large, norm of [20, 20]
    # after a freeing backward only the leaves' gradients are known, and the picture says so
    loss.backward()
    assert "only the leaves" in visual.backward_graph(loss, flow=True).source


def mlp_with_scopes(depth_two: bool = False):
    x = ag.tensor(np.linspace(-1, 1, 6).reshape(2, 3), name="x")
    w1, b1 = ag.randn(4, 3, requires_grad=True), ag.zeros(4, requires_grad=True)
    w2, b2 = ag.randn(2, 4, requires_grad=True), ag.zeros(2, requires_grad=True)
    prefix = "body." if depth_two else ""
    with autograd.scope(prefix + "0"):
        h = F.linear(x, w1, b1)
    with autograd.scope(prefix + "1"):
        h = F.relu(h)
    with autograd.scope("head" if depth_two else "2"):
        z = F.linear(h, w2, b2)
    return F.cross_entropy(z, ag.tensor([0, 1]))


def test_collapse_by_module_draws_one_node_per_layer():
    loss = mlp_with_scopes()
    nodes, edges, edge_list = parse(visual.forward_graph(loss, collapse="module"))
    modules = sorted(k for k in nodes if k.startswith("m"))
    assert modules == ["m0", "m1", "m2"]
    assert "0: Linear" in nodes["m0"] and "weight (4, 3)" in nodes["m0"] and "bias (4)" in nodes["m0"]
    assert ("m0", "m1") in edges and ("m1", "m2") in edges
    assert any(t == "m0" and h == "m1" and 'label="(2, 4)"' in a for t, h, a in edge_list)
    assert len(nodes) == 9  # x, 3 layers, the one-hot target, cross-entropy and mean ops, their outputs
    bnodes, bedges, _ = parse(visual.backward_graph(loss, collapse="module"))
    assert {"bm0", "bm1", "bm2"} <= set(bnodes) and ("bm2", "bm1") in bedges and ("bm1", "bm0") in bedges
    assert "0.weight: ∂L/∂· not computed yet" in bnodes["bm0"]
    loss.backward()
    bnodes, _, _ = parse(visual.backward_graph(loss, collapse="module"))
    assert "0.weight: ∂L/∂· min" in bnodes["bm0"]


def test_collapse_depth_joins_nested_modules():
    loss = mlp_with_scopes(depth_two=True)
    full, _, _ = parse(visual.forward_graph(loss, collapse="module"))
    cut, _, _ = parse(visual.forward_graph(loss, collapse="module", collapse_depth=1))
    assert sorted(k for k in full if k.startswith("m")) == ["m0", "m1", "m2"]
    assert sorted(k for k in cut if k.startswith("m")) == ["m0", "m1"]
    assert "body: Linear → ReLU" in cut["m0"]


def lecture_cnn_loss(batch: int = 2):
    models = pytest.importorskip("autograd_cnn.models")
    ag.manual_seed(0)
    model = models.lecture_cnn(softmax=False)
    x = ag.tensor(np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32), name="images")
    return F.cross_entropy(model(x), ag.tensor(np.arange(batch) % 10))


def test_lecture_cnn_collapses_to_about_ten_nodes():
    loss = lecture_cnn_loss()
    nodes, edges, _ = parse(visual.forward_graph(loss, collapse="module"))
    modules = [v for k, v in nodes.items() if k.startswith("m")]
    assert len(modules) == 10
    assert any("0: Conv2d" in v and "weight (32, 1, 3, 3)" in v for v in modules)
    assert any("9: Linear" in v and "weight (10, 1152)" in v for v in modules)
    assert len(nodes) <= 16
    bnodes, _, _ = parse(visual.backward_graph(loss, collapse="module"))
    assert len([k for k in bnodes if k.startswith("bm")]) == 10


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF"),
                                        ("dot", b"digraph")])
def test_save_renders_each_format(tmp_path, fmt, magic):
    *_, loss = small_graph()
    path = visual.save(loss, tmp_path / f"graph.{fmt}", kind="both")
    data = open(path, "rb").read()
    assert magic in data[:400]
    assert visual.save(loss, tmp_path / "plain", format=fmt).endswith(f"plain.{fmt}")


@needs_dot
def test_lecture_cnn_both_renders_to_svg(tmp_path):
    loss = lecture_cnn_loss()
    path = visual.save(loss, tmp_path / "cnn.svg", kind="both", flow=True)
    text = open(path, encoding="utf-8").read()
    assert "Conv2dBackward" in text and "MaxPool2dBackward" in text and "SoftmaxCrossEntropyBackward" in text


def test_without_dot_the_text_still_comes_and_rendering_says_how_to_install(tmp_path, monkeypatch):
    *_, loss = small_graph()
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` to be found
    assert visual.save(loss, tmp_path / "g.dot").endswith("g.dot")
    g = visual.draw(loss, kind="both")
    assert g.source.startswith("digraph both")
    with pytest.raises(visual.RenderError) as err:
        visual.save(loss, tmp_path / "g.svg")
    message = str(err.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message and "conda" in message
    with pytest.raises(visual.RenderError):
        g.render(tmp_path / "direct", format="png")
    assert "apt-get install graphviz" in g._repr_mimebundle_()["text/plain"]


def test_bad_arguments_say_what_to_pass():
    *_, loss = small_graph()
    with pytest.raises(ValueError, match="kind must be one of"):
        visual.draw(loss, kind="sideways")
    with pytest.raises(ValueError, match="collapse must be None or \"module\""):
        visual.draw(loss, collapse="layer")
    with pytest.raises(ValueError, match="format must be one of"):
        visual.save(loss, "g.gif", format="gif")
    with pytest.raises(TypeError, match="expected a Tensor"):
        visual.forward_graph(np.ones(3))
    with pytest.raises(ValueError, match="rankdir"):
        visual.forward_graph(loss, rankdir="up")


@needs_dot
def test_frames_follow_the_engine_order(tmp_path, backend):
    x, w, b, loss = small_graph()
    paths = visual.backprop_frames(loss, tmp_path / "frames")
    seen = []

    def observe(node, grad_output, input_grads):
        seen.append(node.name)

    with autograd.register_step_hook(observe):
        loss.backward()
    assert len(paths) == len(seen) == 5
    page = (tmp_path / "frames" / "index.html").read_text(encoding="utf-8")
    captions = re.findall(r'data-caption="Step (\d+) of 5: (\w+)Backward', page)
    assert [name for _, name in captions] == seen and [int(k) for k, _ in captions] == [1, 2, 3, 4, 5]
    assert page.count("<svg") == 5 and "http://" not in page.replace("http://www.w3.org", "")
    third = open(paths[2], encoding="utf-8").read()
    assert "#fde047" in third  # the running step is highlighted
    # the frame where the first use of x arrives shows "1 of 2 arrived" at the "+"
    assert "1 of 2 arrived" in open(paths[1], encoding="utf-8").read()
    assert "2 of 2 arrived" in open(paths[4], encoding="utf-8").read()


@needs_dot
def test_frames_as_png_embed_data_uris_and_refuse_a_freed_graph(tmp_path):
    *_, loss = small_graph()
    paths = visual.backprop_frames(loss, tmp_path, format="png")
    assert open(paths[0], "rb").read(4) == b"\x89PNG"
    assert (tmp_path / "index.html").read_text().count("data:image/png;base64,") == len(paths)
    loss.backward()
    with pytest.raises(ag.GraphError, match="retain_graph=True"):
        visual.backprop_frames(loss, tmp_path / "again")


@needs_dot
def test_cli_graph_from_a_script(tmp_path):
    from autograd_cnn import cli

    script = tmp_path / "net.py"
    script.write_text("import autograd_cnn as ag\n"
                      "def build():\n"
                      "    x = ag.tensor([1.0, 2.0], requires_grad=True, name='x')\n"
                      "    return (x * x).sum()\n")
    out = tmp_path / "g.svg"
    assert cli.main(["graph", "--script", str(script), "--kind", "both", "--out", str(out)]) == 0
    assert "<svg" in out.read_text(encoding="utf-8")


@needs_dot
def test_cli_graph_of_the_lecture_cnn(tmp_path):
    pytest.importorskip("autograd_cnn.models")
    from autograd_cnn import cli

    out = tmp_path / "cnn.dot"
    assert cli.main(["graph", "--model", "lecture-cnn", "--kind", "backward", "--collapse", "module",
                     "--out", str(out)]) == 0
    assert "Conv2d" in out.read_text(encoding="utf-8")


@needs_dot
def test_frames_of_both_graphs_and_inline_display_in_jupyter(tmp_path):
    *_, loss = small_graph()
    paths = visual.backprop_frames(loss, tmp_path, kind="both")
    svg = open(paths[0], encoding="utf-8").read()
    assert "cluster_forward" in svg and "cluster_backward" in svg
    bundle = visual.draw(loss)._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]
    with pytest.raises(ValueError, match="format must be one of"):
        visual.backprop_frames(loss, tmp_path, format="gif")


def test_a_create_graph_backward_draws_as_real_ops():
    x, w, b, loss = small_graph()
    loss.backward(create_graph=True)
    b_grad, _, _ = parse(visual.forward_graph(b.grad))
    x_grad, _, _ = parse(visual.forward_graph(x.grad))
    assert any("<B>SumTo</B>" in v for v in b_grad.values())  # b's gradient summed over the broadcast rows
    assert any("<B>Add</B>" in v for v in x_grad.values())  # x's two uses added up
    np.testing.assert_allclose(visual.trace(b.grad).output.tensor.numpy(), [1.0, 2.0, 3.5])


@needs_dot
def test_the_backprop_by_picture_example_runs(tmp_path):
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).parents[1] / "examples" / "backprop_by_picture.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "df/dx = -4, df/dy = -4, df/dz = 3" in done.stdout  # the chain rule on f = (x + y) * z
    for name in ("chain_rule", "neuron", "lecture_cnn"):
        for kind in ("forward", "backward", "both"):
            assert (tmp_path / f"{name}_{kind}.svg").stat().st_size > 1000
        assert (tmp_path / f"{name}_steps" / "index.html").is_file()
