"""Keras's core layers: InputLayer, Dense, Activation, Flatten, Reshape, Dropout, ReLU, LeakyReLU, Softmax."""
from __future__ import annotations

from typing import Any

from ... import checks
from ... import functional as F
from ...errors import ArgumentError, ShapeError
from .. import activations, initializers
from ..graph import KerasTensor, Node, shape_text
from .base import Layer, Layout

_DENSE_LAYOUT = Layout.transposed((1, 0))  # Keras's (in, out) kernel is the engine's (out, in)


class InputLayer(Layer):
    """Where a functional model's data enters: ``keras.Input(shape)`` makes one and returns its output."""

    def __init__(self, shape: Any = None, batch_size: int | None = None, dtype: Any = None,
                 batch_shape: Any = None, name: str | None = None, **kwargs: Any) -> None:
        shape = kwargs.pop("input_shape", shape)
        super().__init__(name=name, dtype=dtype, **kwargs)
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
        elif shape is not None:
            shape = (shape,) if checks.is_int(shape) else tuple(shape)
            batch_shape = (batch_size,) + shape
        else:
            raise ArgumentError("Input: give shape=, the shape of one sample without the batch axis, "
                                "e.g. keras.Input(shape=(28, 28, 1))")
        for n in batch_shape:
            if n is not None:
                checks.integer("Input", "shape", n, 1)
        object.__setattr__(self, "batch_shape", batch_shape)
        object.__setattr__(self, "built", True)
        self._remember(batch_shape=batch_shape)
        tensor = KerasTensor(batch_shape, self.dtype, self.name)
        node = Node(self, None, [], {}, [tensor])
        self._inbound_nodes.append(node)
        tensor._keras_history = (self, node, 0)

    def call(self, inputs: Any) -> Any:
        return inputs


def Input(shape: Any = None, batch_size: int | None = None, dtype: Any = None, name: str | None = None,
          batch_shape: Any = None) -> KerasTensor:
    """A symbolic input of ``shape`` (without the batch axis): ``keras.Input(shape=(28, 28, 1))``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape).output


class Activated(Layer):
    """A layer with an ``activation=`` argument (a name, a callable or None)."""

    def _set_activation(self, activation: Any) -> None:
        fn = activations.get(activation, f"{type(self).__name__}")
        self._remember(activation=activations.serialize(fn))
        if fn is activations.softmax:
            # A layer of its own, so that compile's classification loss reads its input (the logits).
            fn = Softmax(name="softmax")
            self.add_module("softmax", fn)
        object.__setattr__(self, "activation", fn)

    def _activate(self, y: Any) -> Any:
        return y if self.activation is activations.linear else self.activation(y)

    @property
    def ends_in_relu(self) -> bool:
        """Whether the output is a ReLU's (``activation="relu"``): ``GradientStats`` counts its dead units."""
        return self.activation is activations.relu


class Dense(Activated):
    """y = activation(x @ kernel + bias) on the last axis; Keras's kernel (in, units), kept as (units, in)."""

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = checks.integer("Dense", "units", units, 1)
        self.use_bias = checks.flag("Dense", "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "Dense")
        self.bias_initializer = initializers.get(bias_initializer, "Dense")
        self._remember(units=units, use_bias=use_bias,
                       kernel_initializer=initializers.serialize(self.kernel_initializer),
                       bias_initializer=initializers.serialize(self.bias_initializer))
        self._set_activation(activation)

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ShapeError(f"{self!r} needs inputs (batch, ..., features) with a known number of features, "
                             f"got {shape_text(input_shape)}")
        n_in = input_shape[-1]
        self.kernel = self.add_weight((n_in, self.units), self.kernel_initializer, name="kernel", layout=_DENSE_LAYOUT)
        self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias") if self.use_bias else None
        layout = f"(None, {n_in})" if len(input_shape) == 2 else f"(None, ..., {n_in})"
        self.input_spec = {"min_ndim": 2, "axes": {-1: n_in}, "layout": layout}

    def call(self, inputs: Any) -> Any:
        return self._activate(F.linear(inputs, self.kernel, self.bias))

    def _shape_hint(self, shape: tuple) -> str:
        if len(shape) > 2:
            return "; put a Flatten() before it to make each sample one vector"
        return ""


class Activation(Activated):
    """y = activation(x): ``Activation("relu")``."""

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_activation(activation)

    def call(self, inputs: Any) -> Any:
        return self._activate(inputs)


class ReLU(Layer):
    """y = min(max(x, 0), max_value) above ``threshold``, ``negative_slope * (x - threshold)`` below."""

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else checks.real("ReLU", "max_value", max_value, 0.0)
        self.negative_slope = checks.real("ReLU", "negative_slope", negative_slope, 0.0)
        self.threshold = checks.real("ReLU", "threshold", threshold)
        self._remember(max_value=max_value, negative_slope=negative_slope, threshold=threshold)

    def call(self, inputs: Any) -> Any:
        x = inputs - self.threshold if self.threshold else inputs
        y = F.leaky_relu(x, self.negative_slope) if self.negative_slope else F.relu(x)
        if self.threshold:
            y = F.where(inputs.data > self.threshold, inputs, y)  # above the threshold x itself
        return F.minimum(y, self.max_value) if self.max_value is not None else y


class LeakyReLU(Layer):
    """y = x if x > 0 else negative_slope * x (Keras's default slope 0.3)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.negative_slope = checks.real("LeakyReLU", "negative_slope", negative_slope, 0.0)
        self._remember(negative_slope=negative_slope)

    def call(self, inputs: Any) -> Any:
        return F.leaky_relu(inputs, self.negative_slope)


class Softmax(Layer):
    """Probabilities along ``axis``. As a model's last layer, compile's loss reads its input."""

    outputs_probabilities = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = checks.integer("Softmax", "axis", axis)
        self._remember(axis=axis)

    def call(self, inputs: Any) -> Any:
        return F.softmax(inputs, self.axis)


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...), in channels-last order (a free reshape here)."""

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format_of("Flatten", data_format)
        self._remember(data_format=self.data_format)

    def build(self, input_shape: tuple) -> None:
        self.input_spec = {"min_ndim": 1, "layout": "(None, ...)"}

    def call(self, inputs: Any) -> Any:
        if self.data_format == "channels_first" and inputs.ndim > 2:
            # Keras's channels_first Flatten orders the values as channels-last would
            inputs = inputs.transpose(0, *range(2, inputs.ndim), 1)
        return F.flatten(inputs, 1) if inputs.ndim > 1 else inputs.reshape(-1, 1)


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one size may be -1."""

    def __init__(self, target_shape: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else None
        if target is None or not all(checks.is_int(n) and (n >= 1 or n == -1) for n in target) \
                or sum(n == -1 for n in target) > 1:
            raise ArgumentError(f"Reshape: target_shape must be a tuple of sizes >= 1 (one may be -1), "
                                f"got {target_shape!r}")
        self.target_shape = target
        self._remember(target_shape=target)

    def call(self, inputs: Any) -> Any:
        size = 1
        for n in inputs.shape[1:]:
            size *= n
        known = 1
        for n in self.target_shape:
            known *= n if n != -1 else 1
        fits = size % known == 0 if -1 in self.target_shape else size == known
        if not fits:
            raise ShapeError(f"{self!r} cannot reshape inputs {shape_text((None,) + tuple(inputs.shape[1:]))} "
                             f"({size} values a sample) to {shape_text((None,) + self.target_shape)}")
        return inputs.reshape((inputs.shape[0],) + self.target_shape)


class Dropout(Layer):
    """Zero each value with probability ``rate`` while training (the rest scaled by 1 / (1 - rate))."""

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = checks.real("Dropout", "rate", rate, 0.0, 1.0, high_open=True)
        if noise_shape is not None:
            raise ArgumentError("Dropout: noise_shape is not supported; leave it None")
        self.seed = seed
        self._remember(rate=rate, noise_shape=None, seed=seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return F.dropout(inputs, self.rate, bool(training))


def data_format_of(where: str, data_format: Any) -> str:
    """A layer's data_format; None is ``keras.backend.image_data_format()`` (channels-last by default)."""
    if data_format is None:
        from ..backend import image_data_format

        return image_data_format()
    return checks.choice(where, "data_format", data_format, ("channels_last", "channels_first"))


__all__ = ["Activation", "Dense", "Dropout", "Flatten", "Input", "InputLayer", "LeakyReLU", "ReLU", "Reshape",
           "Softmax"]
