"""Keras's BatchNormalization: the engine's ``F.batch_norm`` with Keras's arguments and statistics."""
from __future__ import annotations

from typing import Any

from ... import checks
from ... import functional as F
from ...errors import ShapeError
from .. import initializers
from ..graph import shape_text
from .base import Layer


class BatchNormalization(Layer):
    """Normalise each feature along ``axis`` (the channels: -1 for channels-last images).

    Weights, in Keras's order: ``gamma``, ``beta`` (trained), ``moving_mean``, ``moving_variance``
    (not trained). ``moving = momentum * moving + (1 - momentum) * batch``, with Keras's
    ``momentum=0.99``, ``epsilon=1e-3`` and the batch's biased variance. Inference mode outside
    training, and also in training when the layer is not ``trainable`` (as Keras).
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 moving_mean_initializer: Any = "zeros", moving_variance_initializer: Any = "ones",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = "BatchNormalization"
        self.axis = checks.integer(where, "axis", axis)
        self.momentum = checks.real(where, "momentum", momentum, 0.0, 1.0)
        self.epsilon = checks.real(where, "epsilon", epsilon, 0.0, low_open=True)
        self.center, self.scale = checks.flag(where, "center", center), checks.flag(where, "scale", scale)
        self._inits = [initializers.get(i, where) for i in (gamma_initializer, beta_initializer,
                                                              moving_mean_initializer, moving_variance_initializer)]
        self._remember(axis=axis, momentum=momentum, epsilon=epsilon, center=center, scale=scale)

    def build(self, input_shape: tuple) -> None:
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0 or input_shape[self.axis] is None:
            raise ShapeError(f"{self!r}: axis {self.axis} is not a feature axis of inputs {shape_text(input_shape)}")
        n = input_shape[self.axis]
        gamma, beta, mean, var = self._inits
        self.gamma = self.add_weight((n,), gamma, name="gamma") if self.scale else None
        self.beta = self.add_weight((n,), beta, name="beta") if self.center else None
        self.moving_mean = self.add_weight((n,), mean, name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight((n,), var, name="moving_variance", trainable=False)
        self.input_spec = {"ndim": rank, "axes": {self.axis % rank: n},
                           "layout": shape_text(tuple(None if i != self.axis % rank else n for i in range(rank)))}

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        axis = self.axis % inputs.ndim
        order = None if axis == 1 else (0, axis, *[i for i in range(1, inputs.ndim) if i != axis])
        x = inputs if order is None else inputs.transpose(*order)
        training = bool(training) and self.trainable
        before = self.moving_variance.data.copy() if training else None
        y = F.batch_norm(x, self.moving_mean, self.moving_variance, self.gamma, self.beta, training,
                         1.0 - self.momentum, self.epsilon)
        if training:
            self._biased_variance(before, x.size // x.shape[1])
        if order is None:
            return y
        inverse = sorted(range(len(order)), key=lambda i: order[i])
        return y.transpose(*inverse)

    def _biased_variance(self, before: Any, count: int) -> None:
        """F.batch_norm moved the moving variance toward the batch's unbiased variance (PyTorch's
        choice); Keras moves it toward the biased one: take the difference, (1 - m) var / count, back off."""
        if count < 2:
            return
        kept = self.momentum * before
        moved = self.moving_variance.data
        moved -= (moved - kept) / count

