"""The lecture models and the classic CNN blocks: parameter counts by formula, shapes, one training step."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import models, nn


def conv(c_in: int, c_out: int, k: int, bias: bool = True, groups: int = 1) -> int:
    """Parameters of a k x k convolution: one (c_in/groups) x k x k kernel per output channel, plus biases."""
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def bn(c: int) -> int:
    return 2 * c  # scale and shift; the running statistics are buffers, not parameters


def count(model: nn.Module) -> int:
    return sum(p.size for p in model.parameters())


# --------------------------------------------------------------------------- parameter counts

def test_lecture_counts_match_the_slides():
    # The figures printed by Keras's model.summary() in the lectures.
    assert count(models.lecture_mlp()) == linear(784, 512) + linear(512, 10) == 407_050
    cnn = conv(1, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3)
    assert count(models.lecture_cnn()) == cnn + linear(1152, 10) == 104_202
    assert count(models.lecture_cnn_no_pool()) == cnn + linear(22 * 22 * 128, 10) == 712_202
    assert count(models.mlp_800_400()) == linear(784, 800) + linear(800, 400) + linear(400, 10) == 952_410


def test_summary_returns_the_total(capsys):
    assert models.lecture_cnn().summary((1, 28, 28)) == 104_202
    text = capsys.readouterr().out
    assert "104,202" in text or "104202" in text
    assert models.lecture_mlp().summary((28, 28)) == 407_050


def test_classic_model_counts():
    assert count(models.lenet5()) == (conv(1, 6, 5) + conv(6, 16, 5) + linear(400, 120) + linear(120, 84)
                                      + linear(84, 10)) == 61_706
    assert count(models.alexnet()) == (conv(3, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + conv(128, 128, 3)
                                       + conv(128, 64, 3) + linear(64 * 16, 256) + linear(256, 256)
                                       + linear(256, 10))
    assert count(models.vgg()) == (conv(3, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + conv(128, 128, 3)
                                   + linear(128 * 16, 256) + linear(256, 10))
    assert count(models.vgg(((2, 8), (2, 16)), in_channels=1, hidden=32)) == (
        conv(1, 8, 3) + conv(8, 8, 3) + conv(8, 16, 3) + conv(16, 16, 3) + linear(16 * 8 * 8, 32) + linear(32, 10))


def basic_block(c_in: int, c_out: int, stride: int) -> int:
    skip = conv(c_in, c_out, 1, bias=False) + bn(c_out) if stride != 1 or c_in != c_out else 0
    return conv(c_in, c_out, 3, bias=False) + bn(c_out) + conv(c_out, c_out, 3, bias=False) + bn(c_out) + skip


def test_block_counts():
    assert count(models.BasicBlock(16, 16)) == basic_block(16, 16, 1) == 4672
    assert count(models.BasicBlock(16, 32, stride=2)) == basic_block(16, 32, 2)
    resnet20 = (conv(3, 16, 3, bias=False) + bn(16) + 3 * basic_block(16, 16, 1)
                + basic_block(16, 32, 2) + 2 * basic_block(32, 32, 1)
                + basic_block(32, 64, 2) + 2 * basic_block(64, 64, 1) + linear(64, 10))
    assert count(models.resnet()) == resnet20
    inception = models.InceptionBlock(192, 64, (96, 128), (16, 32), 32)  # GoogLeNet's block 3a
    assert count(inception) == (conv(192, 64, 1) + conv(192, 96, 1) + conv(96, 128, 3) + conv(192, 16, 1)
                                + conv(16, 32, 5) + conv(192, 32, 1))
    separable = models.DepthwiseSeparableConv(32, 64)
    assert count(separable) == conv(32, 32, 3, groups=32) + conv(32, 64, 1) == 2432
    assert count(separable) < conv(32, 64, 3) / 7  # the point of the block


def test_counts_against_pytorch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    def torch_count(m):
        return sum(p.numel() for p in m.parameters())

    lecture = tnn.Sequential(tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(32, 64, 3), tnn.ReLU(),
                             tnn.MaxPool2d(2), tnn.Conv2d(64, 128, 3), tnn.ReLU(), tnn.Flatten(), tnn.Linear(1152, 10))
    assert count(models.lecture_cnn()) == torch_count(lecture)
    block = tnn.Sequential(tnn.Conv2d(16, 32, 3, 2, 1, bias=False), tnn.BatchNorm2d(32),
                           tnn.Conv2d(32, 32, 3, 1, 1, bias=False), tnn.BatchNorm2d(32),
                           tnn.Conv2d(16, 32, 1, 2, bias=False), tnn.BatchNorm2d(32))
    assert count(models.BasicBlock(16, 32, stride=2)) == torch_count(block)
    separable = tnn.Sequential(tnn.Conv2d(32, 32, 3, padding=1, groups=32), tnn.Conv2d(32, 64, 1))
    assert count(models.DepthwiseSeparableConv(32, 64)) == torch_count(separable)


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("name, build, shape", [
    ("lecture_mlp", models.lecture_mlp, (3, 28, 28)),
    ("lecture_mlp flat", models.lecture_mlp, (3, 784)),
    ("lecture_cnn", models.lecture_cnn, (3, 1, 28, 28)),
    ("lecture_cnn_no_pool", models.lecture_cnn_no_pool, (3, 1, 28, 28)),
    ("mlp_800_400", models.mlp_800_400, (3, 28, 28)),
    ("lenet5", models.lenet5, (3, 1, 28, 28)),
    ("alexnet", models.alexnet, (3, 3, 32, 32)),
    ("vgg", models.vgg, (3, 3, 32, 32)),
    ("resnet", lambda: models.resnet((1, 1), (8, 16)), (3, 3, 32, 32)),
])
def test_outputs_ten_classes(backend, name, build, shape):
    model = build()
    if backend != "numpy":
        model.to(backend)
    out = model(ag.randn(*shape))
    assert out.shape == (3, 10) and out.backend == backend
    if isinstance(model[-1], nn.Softmax):
        np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_block_shapes():
    x = ag.randn(2, 16, 12, 12)
    assert models.BasicBlock(16, 16)(x).shape == (2, 16, 12, 12)
    assert models.BasicBlock(16, 32, stride=2)(x).shape == (2, 32, 6, 6)
    inception = models.InceptionBlock(16, 8, (4, 12), (2, 6), 6)
    assert inception.out_channels == 32 and inception(x).shape == (2, 32, 12, 12)
    assert models.DepthwiseSeparableConv(16, 24, stride=2)(x).shape == (2, 24, 6, 6)


def test_basic_block_identity_skip_adds_the_input():
    # With the residual branch silenced (its last BN scaled and shifted to 0), the block is relu(x).
    block = models.BasicBlock(4, 4)
    block.bn2.weight.data[...] = 0
    block.bn2.bias.data[...] = 0
    x = ag.randn(2, 4, 5, 5)
    np.testing.assert_allclose(block(x).numpy(), np.maximum(x.numpy(), 0), atol=1e-6)
    block.bn2.bias.data[...] = 1  # and g(x) = 1 adds one everywhere before the ReLU
    np.testing.assert_allclose(block(x).numpy(), np.maximum(x.numpy() + 1, 0), atol=1e-5)


def test_depthwise_separable_matches_its_two_convolutions():
    block = models.DepthwiseSeparableConv(3, 5, kernel_size=3, padding=1)
    x = ag.randn(2, 3, 6, 6)
    d, p = block.depthwise, block.pointwise
    expected = F.conv2d(F.conv2d(x, d.weight, d.bias, padding=1, groups=3), p.weight, p.bias)
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert d.weight.shape == (3, 1, 3, 3)  # one filter per channel


# --------------------------------------------------------------------------- one training step

TRAINABLE = [
    ("lecture_mlp", lambda: models.lecture_mlp(softmax=False), (28, 28)),
    ("lecture_cnn", lambda: models.lecture_cnn(softmax=False), (1, 28, 28)),
    ("mlp_800_400", lambda: models.mlp_800_400(softmax=False), (28, 28)),
    ("lenet5", models.lenet5, (1, 28, 28)),
    ("alexnet", lambda: models.alexnet(dropout=0.0), (3, 32, 32)),
    ("vgg", lambda: models.vgg(dropout=0.0), (3, 32, 32)),
    ("resnet", lambda: models.resnet((1, 1), (8, 16)), (3, 16, 16)),  # global pooling: any size
    ("inception", lambda: nn.Sequential(models.InceptionBlock(3, 4, (4, 4), (2, 4), 4), nn.GlobalAvgPool2d(),
                                        nn.Linear(16, 10)), (3, 12, 12)),
    ("separable", lambda: nn.Sequential(models.DepthwiseSeparableConv(3, 8), nn.ReLU(), nn.GlobalAvgPool2d(),
                                        nn.Linear(8, 10)), (3, 12, 12)),
]


@pytest.mark.parametrize("name, build, shape", TRAINABLE, ids=[t[0] for t in TRAINABLE])
def test_training_steps_reduce_the_loss(name, build, shape):
    model = build()
    optimizer = ag.optim.RMSprop(model.parameters(), lr=3e-4)  # small steps: no overshoot on 8 examples
    x = ag.randn(8, *shape)
    y = ag.tensor([i % 10 for i in range(8)])  # a list: on the default backend, like x
    losses = []
    for step in range(4):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if step == 0:
            for pname, p in model.named_parameters():
                g = p.grad.numpy()
                assert np.all(np.isfinite(g)), f"{name}: non-finite gradient of {pname}"
                assert np.any(g != 0), f"{name}: zero gradient of {pname}"
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], f"{name}: loss went {losses}"
