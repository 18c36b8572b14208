"""DropConnect (Wan et al., 2013): dropout on a layer's weights rather than on its outputs.

    layer = nn.DropConnect(nn.Linear(128, 10), p=0.3)

While training, each forward pass draws a mask over the wrapped layer's weight: each weight is
dropped with probability ``p`` and the kept ones are scaled by 1 / (1 - p), so that the expected
weight is the weight itself. In evaluation the layer uses its weights as they are: the
lectures' "multiply all weights by the normalising coefficient" is folded into the training
scale, as inverted dropout does. The mask is a tensor of its own ("dropconnect mask") that
multiplies the weight, so the forward picture shows it beside the weight; the bias is kept.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import checks
from .. import functional as F
from ..errors import ArgumentTypeError
from ..random import backend_rng
from ..tensor import Tensor
from .layers import Conv2d, Linear
from .module import Module


class DropConnect(Module):
    """Wraps a ``Linear`` or ``Conv2d``: in training each weight is dropped with probability ``p``
    (the kept ones scaled by 1 / (1 - p)); in evaluation the wrapped layer as it is."""

    def __init__(self, module: Module, p: float = 0.5) -> None:
        super().__init__()
        if not isinstance(module, (Linear, Conv2d)):
            raise ArgumentTypeError(f"DropConnect: module must be an nn.Linear or nn.Conv2d (a layer with one "
                                    f"weight to drop from), got {type(module).__name__}")
        # p = 1 would drop every weight: the layer would put out its bias alone and learn nothing
        self.p = checks.real("DropConnect", "p (the probability of dropping a weight)", p, 0.0, 1.0,
                             high_open=True)
        self.module = module

    def mask(self, weight: Tensor) -> Tensor:
        """A fresh mask for ``weight``: 0 for a dropped weight, 1 / (1 - p) for a kept one."""
        dtype = np.dtype(weight.dtype)
        keep = backend_rng(weight.backend_object).random(weight.shape, dtype=dtype) >= self.p
        return Tensor(keep.astype(dtype) * dtype.type(1.0 / (1.0 - self.p)), weight.backend_object,
                      name="dropconnect mask")

    def forward(self, x: Any) -> Any:
        m = self.module
        if not self.training or self.p == 0:
            return m(x)
        weight = m.weight * self.mask(m.weight)
        if isinstance(m, Linear):
            m._expect(x, range(1, 9), f"(N, {m.in_features})", -1, m.in_features)
            return F.linear(x, weight, m.bias)
        m._expect(x, 4, f"(N, {m.in_channels}, H, W)", 1, m.in_channels)
        return F.conv2d(x, weight, m.bias, m.stride, m.padding, m.dilation, m.groups)

    def extra_repr(self) -> str:
        return f"p={self.p}"
