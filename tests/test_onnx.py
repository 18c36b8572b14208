"""ONNX export: every model and every exportable layer, run in onnxruntime (two batch sizes) and in
onnx's reference evaluator (an independent second runtime), against our own forward pass; the
names a reader sees in Netron; the error paths; the command line."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import cli, models, nn
from autograd_cnn import onnx as exporter
from autograd_cnn.autograd import Function


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[dev]')")


def randomise_statistics(model: nn.Module) -> nn.Module:
    """Batch norms with running statistics and affine weights far from 0 and 1: not the identity."""
    rng = np.random.default_rng(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.data[...] = rng.normal(0, 0.5, n)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, n)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, n)
                m.bias.data[...] = rng.normal(0, 0.5, n)
    return model


class Pieces(nn.Module):
    """Ops with several outputs: split (one piece unused), chunk and unbind."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)

    def forward(self, x):
        a, b, _ = ag.split(self.conv(x), [2, 4], axis=1)                         # (N, 2, 4, 4) each
        c = ag.concat(list(ag.chunk(a * b, 3, axis=2)), axis=2)                  # pieces of 2, 2
        rows = ag.unbind(c, axis=3)                                              # 4 of (N, 2, 4)
        return rows[0] + rows[3] * 2


class Functional(nn.Module):
    """The functional ops beyond the layers: pad, concat, arithmetic, reductions, shape ops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(ag.pad(x, ((0, 0), (0, 0), (1, 2), (2, 1)), value=0.5))    # (N, 4, 7, 7)
        y = ag.concat([y, y * 2 - 1, (y / 3).exp(), -y], axis=1)                 # (N, 16, 7, 7)
        y = ag.maximum(y, 0.1) + ag.minimum(y, -0.1) + (y.abs() + 1).sqrt().log() + y ** 2
        v = y.reshape(y.shape[0], 16, 49).transpose(0, 2, 1)                     # (N, 49, 16)
        w = v.mean(axis=1) + v.sum(axis=1, keepdims=True).reshape(y.shape[0], 16) * 0.01
        w = w + v.max(axis=1) - v.min(axis=(1,))
        return F.log_softmax(w, axis=-1).astype("float64")


class Sequences(nn.Module):
    """Linear on (N, L, F) inputs (MatMul, not Gemm), with and without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 3), nn.Linear(3, 2, bias=False)

    def forward(self, x):
        return F.flatten(self.b(F.gelu(self.a(x), approximate="tanh")))


# name: (build the model, input shape with a batch of 1)
CASES = {
    # every model in autograd_cnn.models
    "lecture_cnn": (models.lecture_cnn, (1, 1, 28, 28)),
    "lecture_cnn_logits": (lambda: models.lecture_cnn(softmax=False), (1, 1, 28, 28)),
    "lecture_cnn_no_pool": (models.lecture_cnn_no_pool, (1, 1, 28, 28)),
    "lecture_mlp": (models.lecture_mlp, (1, 28, 28)),
    "mlp_800_400": (models.mlp_800_400, (1, 784)),
    "lenet5": (models.lenet5, (1, 1, 28, 28)),
    "alexnet": (models.alexnet, (1, 3, 32, 32)),
    "vgg": (models.vgg, (1, 3, 32, 32)),
    "resnet20": (lambda: randomise_statistics(models.resnet()), (1, 3, 32, 32)),
    "inception_block": (lambda: models.InceptionBlock(3, 4, (3, 5), (2, 3), 2), (1, 3, 9, 9)),
    "depthwise_separable": (lambda: models.DepthwiseSeparableConv(4, 6, stride=2), (1, 4, 9, 9)),
    "basic_block": (lambda: randomise_statistics(models.BasicBlock(3, 5, stride=2)), (1, 3, 9, 9)),
    # every exportable layer, with its settings
    "conv2d_settings": (lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 6, 4, padding="same"),
        nn.Conv2d(6, 6, 3, dilation=2, groups=3, bias=False), nn.Conv2d(6, 4, (3, 1), stride=(1, 2), padding=(1, 0)),
        nn.Conv2d(4, 4, 2, padding="valid")), (1, 3, 15, 14)),
    "conv1d_pool1d_batchnorm1d": (lambda: randomise_statistics(nn.Sequential(
        nn.Conv1d(3, 4, 3, padding="same", dilation=2), nn.Conv1d(4, 6, 3, stride=2, groups=2),
        nn.MaxPool1d(2), nn.AvgPool1d(3, stride=1, padding=1), nn.BatchNorm1d(6))), (1, 3, 21)),
    "conv_transpose2d": (lambda: nn.Sequential(
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose2d(6, 3, 2, stride=3, dilation=2, bias=False), nn.ConvTranspose2d(3, 2, 3)), (1, 4, 5, 6)),
    "conv_transpose2d_grouped": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=(1, 0), output_padding=1,
                                                            groups=2), (1, 4, 5, 6)),
    "pooling": (lambda: nn.Sequential(
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.MaxPool2d(2, stride=1, dilation=2),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), nn.AvgPool2d(2, padding=1, count_include_pad=False),
        nn.AvgPool2d(2, stride=3, ceil_mode=True, count_include_pad=False)), (1, 3, 29, 26)),
    "max_pool2d_dilated": (lambda: nn.Sequential(  # pads as wide as the kernel: onnxruntime needs a Pad op
        nn.MaxPool2d(2, dilation=3, padding=2), nn.MaxPool2d(2, stride=3, dilation=2, ceil_mode=True)), (1, 2, 12, 12)),
    "adaptive_and_global_max": (lambda: nn.Sequential(nn.AdaptiveAvgPool2d((3, 2)), nn.GlobalMaxPool2d()),
                                (1, 3, 8, 7)),
    "adaptive_and_global_avg": (lambda: nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.GlobalAvgPool2d()), (1, 3, 8, 8)),
    "activations_and_batchnorm": (lambda: randomise_statistics(nn.Sequential(
        nn.Linear(5, 8), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.BatchNorm1d(8), nn.Tanh(), nn.GELU(),
        nn.GELU("tanh"), nn.Dropout(0.5), nn.Identity(), nn.ReLU(), nn.Linear(8, 4), nn.Softmax())), (1, 5)),
    "batchnorm2d_without_affine": (lambda: randomise_statistics(nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.BatchNorm2d(3, eps=1e-3, affine=False))), (1, 2, 6, 6)),
    "locally_connected": (lambda: nn.Sequential(nn.LocallyConnected2d(3, 4, 3, (8, 7), stride=2), nn.Flatten()),
                          (1, 3, 8, 7)),
    "sequences": (Sequences, (1, 4, 5)),
    # the evaluation form: the weights as they are
    "dropconnect": (lambda: nn.Sequential(nn.DropConnect(nn.Conv2d(2, 3, 3), 0.4), nn.ReLU(), nn.Flatten(),
                                          nn.DropConnect(nn.Linear(48, 5), 0.3)), (1, 2, 6, 6)),
    "functional": (Functional, (1, 3, 6, 6)),
    "several_outputs": (Pieces, (1, 3, 6, 6)),
}


# Cases that onnx's reference evaluator computes wrongly, with the reason (onnxruntime still runs them).
REFERENCE_IS_WRONG = {
    "conv_transpose2d_grouped": "onnx.reference's ConvTranspose takes each group's weights from the wrong axis "
                                "of W (output channels, not input channels)",
}


def inputs(shape: tuple, batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *shape[1:])).astype(np.float32)


def ours(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with ag.no_grad():
        return model.eval()(ag.tensor(x)).numpy()


def assert_close(theirs: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert theirs.shape == expected.shape and theirs.dtype == expected.dtype, what
    scale = float(np.abs(expected).max())
    err = float(np.abs(theirs - expected).max())
    assert err <= 1e-5 * scale, f"{what}: max |difference| {err:.3g} for outputs up to {scale:.3g}"


def run_both_runtimes(onnx, ort, model: nn.Module, shape: tuple, path, opset: int, reference: bool = True) -> None:
    exporter.export(model, inputs(shape, 2), path, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # neither is the example's batch of 2: the batch axis is free
        x = inputs(shape, batch, seed=batch)
        assert_close(session.run(None, {"input": x})[0], ours(model, x), f"onnxruntime, batch {batch}")
    if not reference:
        return
    from onnx.reference import ReferenceEvaluator  # pure Python and NumPy: slow, so one small batch

    x = inputs(shape, 1, seed=7)
    assert_close(ReferenceEvaluator(proto).run(None, {"input": x})[0], ours(model, x), "reference evaluator")


@pytest.mark.parametrize("name", list(CASES))
def test_export_runs_as_our_forward_does(name, onnx, ort, tmp_path):
    build, shape = CASES[name]
    run_both_runtimes(onnx, ort, build(), shape, tmp_path / f"{name}.onnx", opset=17,
                      reference=name not in REFERENCE_IS_WRONG)


@pytest.mark.parametrize("name", ["activations_and_batchnorm", "functional", "sequences", "resnet20"])
def test_a_newer_opset_with_gelu_and_reduce_axes_as_inputs(name, onnx, ort, tmp_path):
    build, shape = CASES[name]
    run_both_runtimes(onnx, ort, build(), shape, tmp_path / f"{name}.onnx", opset=20)


def test_a_model_on_any_backend_exports(backend, onnx, ort, tmp_path):
    model = randomise_statistics(models.resnet((1,), (4,), in_channels=1))  # weights and buffers on `backend`
    path = tmp_path / "gpu.onnx"
    exporter.export(model, ag.zeros(2, 1, 8, 8), path)
    x = inputs((1, 1, 8, 8), 3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {"input": x})[0], ours(model, x), f"a model on {backend}")


def test_gelu_is_one_node_from_opset_20_and_its_formula_before(onnx, tmp_path):
    model = nn.Sequential(nn.GELU())
    ops = {opset: [n.op_type for n in exporter.export(model, np.ones((2, 3), "float32"), tmp_path / "g.onnx",
                                                      opset=opset).graph.node] for opset in (17, 20)}
    assert ops[20] == ["Gelu"] and "Erf" in ops[17] and "Gelu" not in ops[17]


# --------------------------------------------------------------------------- what Netron shows


def test_names_follow_the_module_paths(onnx, tmp_path):
    model = models.lecture_cnn()
    proto = exporter.export(model, np.zeros((1, 1, 28, 28), "float32"), tmp_path / "cnn.onnx")
    graph = proto.graph
    assert [i.name for i in graph.initializer] == list(model.state_dict())  # "0.weight", "0.bias", ...
    assert [(n.name, n.op_type) for n in graph.node] == [
        ("0", "Conv"), ("1", "Relu"), ("2", "MaxPool"), ("3", "Conv"), ("4", "Relu"), ("5", "MaxPool"),
        ("6", "Conv"), ("7", "Relu"), ("8", "Flatten"), ("9", "Gemm"), ("10", "Softmax")]
    assert list(graph.node[0].input) == ["input", "0.weight", "0.bias"]
    assert list(graph.node[9].input) == ["8", "9.weight", "9.bias"] and graph.node[-1].output[0] == "output"
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    assert dims(graph.input[0]) == ["batch", 1, 28, 28] and dims(graph.output[0]) == ["batch", 10]
    assert {v.name for v in graph.value_info} >= {"0", "8", "9"}  # inferred shapes on every edge


def test_a_layer_of_several_nodes_names_each_after_it(onnx, tmp_path):
    model = randomise_statistics(models.resnet((1, 1), (4, 8)))
    proto = exporter.export(model, np.zeros((1, 3, 8, 8), "float32"), tmp_path / "r.onnx")
    names = [n.name for n in proto.graph.node]
    assert {"3.conv1", "3.bn1", "3/Relu", "3/Add", "3/Relu_2", "4.shortcut.0", "4.shortcut.1"} <= set(names)
    assert len(names) == len(set(names))
    initializers = {i.name for i in proto.graph.initializer}
    assert {"1.running_mean", "1.running_var", "3.bn1.weight", "4.shortcut.1.running_var"} <= initializers


def test_a_fixed_batch_on_request(onnx, ort, tmp_path):
    path = tmp_path / "fixed.onnx"
    proto = exporter.export(models.lecture_mlp(), np.zeros((4, 28, 28), "float32"), path, dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_export_leaves_the_model_as_it_was(onnx, tmp_path):
    model = randomise_statistics(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5)))
    model.train()
    model[0].weight.requires_grad = False
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    exporter.export(model, np.ones((2, 1, 5, 5), "float32"), tmp_path / "m.onnx")
    assert all(m.training for m in model.modules())
    assert model[0].weight.requires_grad is False and model[0].bias.requires_grad is True
    assert all(np.array_equal(before[k], v.numpy()) for k, v in model.state_dict().items())  # no running update


def test_exporting_the_lecture_cnn_is_quick(onnx, tmp_path):
    import time

    model, x = models.lecture_cnn(), np.zeros((1, 1, 28, 28), "float32")
    exporter.export(model, x, tmp_path / "warm.onnx")
    start = time.perf_counter()
    exporter.export(model, x, tmp_path / "cnn.onnx")
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------- errors


class Pick(nn.Module):
    def forward(self, x):
        return x[:, [0, 2]]  # an integer-array index: no Slice can write it


def test_an_unexportable_op_names_itself_its_layer_and_the_opset(onnx, tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), Pick())
    with pytest.raises(exporter.ExportError) as info:
        exporter.export(model, np.ones((2, 4), "float32"), tmp_path / "m.onnx", opset=18)
    message = str(info.value)
    assert "GetItem" in message and "layer '1' (Pick)" in message and "opset 18" in message
    assert not (tmp_path / "m.onnx").exists()


def test_batch_statistics_cannot_be_exported(onnx, tmp_path):
    class AlwaysTraining(nn.Module):
        def forward(self, x):
            return F.batch_norm(x, None, None, training=True)

    with pytest.raises(exporter.ExportError, match="BatchNorm in the forward of AlwaysTraining .*training=True"):
        exporter.export(AlwaysTraining(), np.ones((2, 3), "float32"), tmp_path / "m.onnx")


def test_an_unknown_opset_says_which_ones_work(onnx, tmp_path):
    with pytest.raises(exporter.ExportError, match=r"opset 12 is not supported; choose one from 13 to \d+"):
        exporter.export(models.lecture_mlp(), np.ones((1, 784), "float32"), tmp_path / "m.onnx", opset=12)


def test_a_model_returning_two_tensors_is_refused(onnx, tmp_path):
    class Two(nn.Module):
        def forward(self, x):
            return x * 2, x * 3

    with pytest.raises(exporter.ExportError, match="returned tuple"):
        exporter.export(Two(), np.ones((1, 2), "float32"), tmp_path / "m.onnx")


def test_without_onnx_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` meets where it is not installed
    with pytest.raises(ImportError, match=r"pip install 'autograd-cnn\[onnx\]'"):
        exporter.export(models.lecture_mlp(), np.ones((1, 784), "float32"), tmp_path / "m.onnx")


def test_importing_the_package_loads_neither_onnx_nor_torch():
    code = ("import sys, autograd_cnn, autograd_cnn.onnx, autograd_cnn.interop; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# Ops that stay out of EMITTERS on purpose; a new Function must be added to one or the other.
NOT_EXPORTED = {
    # the backward pass's own ops: an exported graph is an inference graph
    "ReLUGrad", "SigmoidGrad", "TanhGrad", "Conv2dGradWeight", "Fold", "MaxPool2dGrad", "MaxPool2dGather",
    "AvgPool2dGrad", "ScatterAdd", "SumTo", "BroadcastTo", "ChannelSum", "SoftmaxCrossEntropyGrad",
    # losses and training-only ops: export the model, not its loss
    "SoftmaxCrossEntropy", "BCEWithLogits", "OneHot",
    # no gradient, and no layer of nn uses them
    "Compare", "ArgMax", "ArgMin", "Sign",
    # no layer of nn or model uses them yet; each would be a small translation
    "Stack", "Where", "Var", "Softplus",
}


def all_functions() -> set[type]:
    found, stack = set(), [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("autograd_cnn.") and not sub.__name__.startswith("_"):
                found.add(sub)
    return found


def test_every_op_is_exportable_or_knowingly_left_out():
    undecided = sorted(f.__name__ for f in all_functions() if f not in exporter.EMITTERS and f.__name__ not in
                       NOT_EXPORTED)
    assert not undecided, ("add a translation to EMITTERS in autograd_cnn/onnx_emitters.py, or list here why not: "
                           f"{undecided}")
    assert not NOT_EXPORTED & {f.__name__ for f in exporter.EMITTERS}


# --------------------------------------------------------------------------- command line


def test_the_export_command(onnx, ort, tmp_path, capsys):
    model = models.lecture_cnn()
    for p in model.parameters():  # weights no freshly built model has
        p.data[...] = np.random.default_rng(3).normal(0, 0.1, p.shape)
    weights, out = tmp_path / "cnn.npz", tmp_path / "out" / "cnn.onnx"
    model.save(str(weights))
    assert cli.main(["export", "--model", "lecture-cnn", "--weights", str(weights), "--out", str(out)]) == 0
    assert "input 'input' (batch, 1, 28, 28)" in capsys.readouterr().out
    x = inputs((1, 1, 28, 28), 5)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {"input": x})[0], ours(model, x), "the exported trained model")


def test_the_export_command_names_a_missing_weights_file(onnx, tmp_path, capsys):
    # checked with the other paths before any work: a usage error, as argparse's (exit status 2)
    assert cli.main(["export", "--weights", str(tmp_path / "none.npz"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.strip().endswith("none.npz: no such file")
