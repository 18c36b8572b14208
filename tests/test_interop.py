"""Weights from PyTorch: our names and layouts are PyTorch's for every model, a PyTorch-trained
model gives the same outputs here, and the errors of a state dict that does not fit."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import interop, models, nn
from autograd_cnn.serialization import CheckpointError


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch is not installed: the weights cross-check needs it")


def torch_twin(torch, module: nn.Module):
    """The PyTorch module with the same layers, settings and attribute names (no forward for blocks)."""
    tn = torch.nn
    simple = {nn.ReLU: tn.ReLU, nn.Sigmoid: tn.Sigmoid, nn.Tanh: tn.Tanh, nn.Identity: tn.Identity,
              nn.Flatten: tn.Flatten, nn.GlobalAvgPool2d: lambda: tn.AdaptiveAvgPool2d(1)}
    kind = type(module)
    if kind in simple:
        twin = simple[kind]()
        return tn.Sequential(twin, tn.Flatten()) if kind is nn.GlobalAvgPool2d else twin
    if kind is nn.Linear:
        return tn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    if kind is nn.Conv2d:
        return tn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                         module.dilation, module.groups, bias=module.bias is not None)
    if kind is nn.BatchNorm2d:
        return tn.BatchNorm2d(module.num_features)
    if kind is nn.MaxPool2d:
        return tn.MaxPool2d(module.kernel_size, module.stride, module.padding)
    if kind is nn.AvgPool2d:
        return tn.AvgPool2d(module.kernel_size, module.stride, module.padding)
    if kind is nn.Dropout:
        return tn.Dropout(module.p)
    if kind is nn.Softmax:
        return tn.Softmax(dim=module.axis)
    container = tn.Sequential() if kind is nn.Sequential else tn.Module()
    for name, child in module.named_children():
        container.add_module(name, torch_twin(torch, child))
    return container


def shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


MODELS = {"lecture_cnn": models.lecture_cnn, "lecture_cnn_no_pool": models.lecture_cnn_no_pool,
          "lecture_mlp": models.lecture_mlp, "mlp_800_400": models.mlp_800_400, "lenet5": models.lenet5,
          "alexnet": models.alexnet, "vgg": models.vgg, "resnet20": models.resnet,
          "inception_block": lambda: models.InceptionBlock(3, 4, (3, 5), (2, 3), 2),
          "depthwise_separable": lambda: models.DepthwiseSeparableConv(4, 6)}


@pytest.mark.parametrize("name", list(MODELS))
def test_our_names_and_layouts_are_pytorchs(name):
    torch = torch_or_skip()
    ours = MODELS[name]()
    twin = torch_twin(torch, ours)
    assert shapes(ours.state_dict()) == shapes(twin.state_dict())
    ours.load_state_dict(interop.from_torch(twin))  # strict: every name found, num_batches_tracked passed over
    for key, value in twin.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy())


def test_a_pytorch_trained_lecture_cnn_gives_the_same_logits_here():
    torch = torch_or_skip()
    torch.manual_seed(0)
    twin = torch_twin(torch, models.lecture_cnn(softmax=False))
    x = torch.rand(32, 1, 28, 28)
    y = torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):  # trained in PyTorch: weights no initialiser would give
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(x), y).backward()
        optimizer.step()
    model = models.lecture_cnn(softmax=False)
    model.load_state_dict(interop.from_torch(twin.state_dict()))
    with torch.no_grad():
        expected = twin(x).numpy()
    with ag.no_grad():
        got = model(ag.tensor(x.numpy())).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_a_pytorch_resnet_with_running_statistics_gives_the_same_outputs():
    torch = torch_or_skip()
    tn = torch.nn

    class TorchBasicBlock(tn.Module):  # models.BasicBlock, written in PyTorch
        def __init__(self, block: models.BasicBlock) -> None:
            super().__init__()
            for name, child in block.named_children():
                self.add_module(name, torch_twin(torch, child))

        def forward(self, x):
            g = self.bn2(self.conv2(tn.functional.relu(self.bn1(self.conv1(x)))))
            return tn.functional.relu(g + self.shortcut(x))

    ours = models.resnet((1, 1), (4, 8))
    twin = tn.Sequential(*[TorchBasicBlock(m) if isinstance(m, models.BasicBlock) else torch_twin(torch, m)
                           for m in ours])
    twin.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics and num_batches_tracked move
            twin(torch.randn(8, 3, 8, 8) * 2 + 1)
    twin.eval()
    ours.load_state_dict(interop.from_torch(twin))
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        expected = twin(x).numpy()
    got = ours.eval()(ag.tensor(x.numpy())).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_from_torch_converts_what_numpy_lacks_and_refuses_what_is_no_tensor():
    torch = torch_or_skip()
    arrays = interop.from_torch({"w": torch.ones(2, requires_grad=True), "h": torch.ones(2, dtype=torch.bfloat16)})
    assert arrays["w"].dtype == np.float32 and arrays["h"].dtype == np.float32
    with pytest.raises(TypeError, match="entry 'extra' is a str"):
        interop.from_torch({"extra": "state"})


def test_from_torch_without_pytorch_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install torch"):
        interop.from_torch({})


def test_a_misshaped_weight_names_itself_and_both_shapes():
    model = models.lecture_cnn()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state["3.weight"] = np.zeros((64, 32, 5, 5), np.float32)
    with pytest.raises(CheckpointError, match=r"'3\.weight' has shape \(64, 32, 5, 5\), the model's \(64, 32, 3, 3\)"):
        model.load_state_dict(state)


def test_a_keras_layout_is_named_with_what_to_do():
    model = models.lecture_cnn()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state["9.weight"] = state["9.weight"].T.copy()  # Keras's Dense kernel: (in, out)
    with pytest.raises(CheckpointError, match=r"'9\.weight' has shape \(1152, 10\).*Keras.*transpose"):
        model.load_state_dict(state)


def test_only_a_batch_norm_may_bring_a_batch_count():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    model.load_state_dict({**state, "1.num_batches_tracked": np.array(5)})
    with pytest.raises(CheckpointError, match="unexpected 0.num_batches_tracked"):
        model.load_state_dict({**state, "0.num_batches_tracked": np.array(5)})
