"""The models of the lectures, ready to train, and the blocks of the classic CNN families.

    model = models.lecture_cnn()       # Conv 32/64/128 + MaxPool + Dense 10: 104,202 parameters
    model.summary((1, 28, 28))

Images come channels first, (N, C, H, W), as in PyTorch: a batch of MNIST digits is
(N, 1, 28, 28). The MLPs start with ``Flatten`` so they take (N, 28, 28) or (N, 784).
Models whose lecture version ends in Keras's ``activation="softmax"`` end in ``nn.Softmax()``
(``softmax=False`` leaves plain logits); ``compile``'s losses handle either.
"""
from __future__ import annotations

from typing import Any

from . import functional as F
from . import nn
from .ops.shape import concat

# --------------------------------------------------------------------------- the lecture models


def _head(layers: list[Any], softmax: bool) -> nn.Sequential:
    return nn.Sequential(*layers, nn.Softmax()) if softmax else nn.Sequential(*layers)


def lecture_mlp(softmax: bool = True) -> nn.Sequential:
    """Keras's MNIST network: Dense 512 relu, Dense 10 softmax (407,050 parameters)."""
    return _head([nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)], softmax)


def mlp_800_400(softmax: bool = True) -> nn.Sequential:
    """The 800-400-10 MNIST perceptron (952,410 parameters)."""
    return _head([nn.Flatten(), nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 400), nn.ReLU(),
                  nn.Linear(400, 10)], softmax)


def lecture_cnn(softmax: bool = True) -> nn.Sequential:
    """The lecture convnet for (N, 1, 28, 28) digits (104,202 parameters).

    Conv2d(1,32,3) ReLU MaxPool2d(2) Conv2d(32,64,3) ReLU MaxPool2d(2) Conv2d(64,128,3) ReLU
    Flatten Linear(1152,10): 28 -> 26 -> 13 -> 11 -> 5 -> 3, and 3*3*128 = 1152 features.
    """
    return _head([
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * 3 * 128, 10),
    ], softmax)


def lecture_cnn_no_pool(softmax: bool = True) -> nn.Sequential:
    """The same convnet without pooling (712,202 parameters: the Dense layer sees 22*22*128 features)."""
    return _head([
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.Conv2d(64, 128, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(22 * 22 * 128, 10),
    ], softmax)


# --------------------------------------------------------------------------- classic CNNs


def lenet5(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 (LeCun et al., 1998) for 28x28 inputs, as in Dive into Deep Learning: 61,706 parameters.

    Two CONV+POOL stages (5x5 kernels, the first padded so 28x28 plays the paper's 32x32,
    sigmoid activations, average pooling), then dense layers of 120, 84 and 10 units.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, num_classes),
    )


def alexnet(in_channels: int = 3, num_classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """A small AlexNet for 32x32 images (CIFAR-10): five 3x3 convolutions, three max-pools, dropout.

    AlexNet's shape (Krizhevsky et al., 2012) scaled down: 32 -> 16 -> 8 -> 4, then two
    hidden dense layers of 256 units with dropout.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
        nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, num_classes),
    )


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> list[nn.Module]:
    """A VGG block: ``num_convs`` 3x3 convolutions (padding 1) with ReLU, then a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)]


def vgg(blocks: tuple[tuple[int, int], ...] = ((1, 32), (1, 64), (2, 128)), in_channels: int = 3,
        num_classes: int = 10, hidden: int = 256, dropout: float = 0.5) -> nn.Sequential:
    """A VGG network (Simonyan and Zisserman, 2014) for 32x32 images.

    ``blocks`` lists (number of 3x3 convolutions, channels) per block; each block halves
    the size, so three blocks leave 4x4 maps for the dense head.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for num_convs, out_channels in blocks:
        layers += vgg_block(num_convs, channels, out_channels)
        channels = out_channels
    side = 32 // 2 ** len(blocks)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, hidden), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, num_classes))


class InceptionBlock(nn.Module):
    """GoogLeNet's Inception block: four parallel paths joined along the channels.

    1x1 conv | 1x1 then 3x3 conv | 1x1 then 5x5 conv | 3x3 max-pool then 1x1 conv, each
    followed by ReLU and padded so every path keeps the input's height and width.
    ``c2`` and ``c3`` are (reduce, out) channel pairs; the block outputs c1 + c2[1] + c3[1] + c4.
    """

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int) -> None:
        super().__init__()
        self.path1 = nn.Conv2d(in_channels, c1, 1)
        self.path2_reduce = nn.Conv2d(in_channels, c2[0], 1)
        self.path2 = nn.Conv2d(c2[0], c2[1], 3, padding=1)
        self.path3_reduce = nn.Conv2d(in_channels, c3[0], 1)
        self.path3 = nn.Conv2d(c3[0], c3[1], 5, padding=2)
        self.path4_pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.path4 = nn.Conv2d(in_channels, c4, 1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: Any) -> Any:
        p1 = F.relu(self.path1(x))
        p2 = F.relu(self.path2(F.relu(self.path2_reduce(x))))
        p3 = F.relu(self.path3(F.relu(self.path3_reduce(x))))
        p4 = F.relu(self.path4(self.path4_pool(x)))
        return concat([p1, p2, p3, p4], axis=1)


class DepthwiseSeparableConv(nn.Module):
    """A depthwise convolution (one k x k filter per channel, ``groups=in_channels``) then a 1x1 pointwise one.

    It sees the same k x k window as ``Conv2d(in, out, k)`` with about 1/out + 1/k^2 of its
    weights (MobileNet, Xception).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Any = 1, bias: bool = True) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                   groups=in_channels, bias=bias)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: Any) -> Any:
        return self.pointwise(self.depthwise(x))


class BasicBlock(nn.Module):
    """ResNet's basic block (He et al., 2015): relu(x + g(x)), g = conv3x3 BN ReLU conv3x3 BN.

    When ``stride`` or the channel count changes, the skip path is a 1x1 convolution with
    batch norm so that x and g(x) have the same shape.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Any) -> Any:
        g = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(g + self.shortcut(x))


def resnet(blocks_per_stage: tuple[int, ...] = (3, 3, 3), widths: tuple[int, ...] = (16, 32, 64),
           in_channels: int = 3, num_classes: int = 10) -> nn.Sequential:
    """A CIFAR-style ResNet of :class:`BasicBlock` stages; the default (3, 3, 3) is ResNet-20.

    A 3x3 stem, then one stage per width (every stage after the first halves the size),
    global average pooling and a linear classifier.
    """
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                               nn.BatchNorm2d(widths[0]), nn.ReLU()]
    channels = widths[0]
    for stage, (count, width) in enumerate(zip(blocks_per_stage, widths)):
        for i in range(count):
            layers.append(BasicBlock(channels, width, stride=2 if stage > 0 and i == 0 else 1))
            channels = width
    return nn.Sequential(*layers, nn.GlobalAvgPool2d(), nn.Linear(channels, num_classes))


# The names ``autograd-cnn train --model`` accepts, with the input each model expects.
MODELS = {
    "lecture-cnn": (lecture_cnn, (1, 28, 28)),
    "lecture-mlp": (lecture_mlp, (28, 28)),
    "lecture-cnn-no-pool": (lecture_cnn_no_pool, (1, 28, 28)),
    "mlp-800-400": (mlp_800_400, (28, 28)),
    "lenet5": (lenet5, (1, 28, 28)),
}
