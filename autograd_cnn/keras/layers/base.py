"""``keras.layers.Layer``: Keras's layer interface on an ``nn.Module``.

A Keras layer is a Module (so a Keras model is one too: fit, pictures, ONNX, DataParallel and
GradientStats see an ordinary module tree) with Keras's life cycle on top:

    layer = Dense(10)            # a name ("dense", "dense_1", ...), no weights yet
    y = layer(x)                 # first call: build(x.shape) makes the weights, then call(x)
    y = layer(keras_tensor)      # on a KerasTensor: build, work out the output shape, record the call

Weights live in the engine's layouts (a Conv2D kernel as (out, in, kh, kw), as ``nn.Conv2d``), so
a Keras model runs the very ops and kernels an ``nn`` model runs; ``get_weights`` and
``set_weights`` convert to and from Keras's layouts ((kh, kw, in, out); a Dense kernel (in, out)).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

from ... import checks
from ...autograd import no_grad
from ...backends import get_backend
from ...errors import ArgumentError, ArgumentTypeError, ShapeError
from ...nn.module import Module, Parameter
from ...tensor import Tensor
from .. import graph, initializers
from ..graph import KerasTensor, Node, shape_text

_LAYER_OPTIONS = ("input_shape", "input_dim", "batch_input_shape", "batch_size")


class Layout:
    """How a weight is kept (the engine's layout) against Keras's, as two array functions."""

    def __init__(self, to_engine: Any, to_keras: Any) -> None:
        self.to_engine, self.to_keras = to_engine, to_keras

    @classmethod
    def transposed(cls, axes: tuple) -> Layout:
        """Keras's array transposed by ``axes`` is the engine's (and back by the inverse)."""
        inverse = tuple(sorted(range(len(axes)), key=lambda i: axes[i]))
        return cls(lambda a: a.transpose(axes), lambda a: a.transpose(inverse))


AS_IS = Layout(lambda a: a, lambda a: a)


class _Weight:
    """One weight of a layer: its attribute, Keras's shape, its layout, and whether it trains."""

    __slots__ = ("attr", "shape", "layout", "trainable")

    def __init__(self, attr: str, shape: tuple, layout: Layout, trainable: bool) -> None:
        self.attr, self.shape, self.layout, self.trainable = attr, shape, layout, trainable


class Layer(Module):
    """Base class of Keras's layers (and of ``Model``). The interface every layer keeps:

    - ``name`` (automatic and unique per kind, as Keras: ``conv2d``, ``conv2d_1``), ``built``,
      ``trainable`` (False freezes its weights; a BatchNormalization then runs in inference mode),
      ``dtype`` ("float32" unless given).
    - ``build(input_shape)``: make the weights with ``add_weight`` (called once, by the first call,
      with the input's shape, batch axis ``None``); ``call(inputs, training=None)``: the forward
      computation (``training`` None means the module's ``training`` flag);
      ``compute_output_shape(input_shape)`` (by default: the layer run on a zero batch of one).
    - ``add_weight(shape, initializer, dtype, trainable, name, layout=AS_IS)``: ``shape`` is Keras's;
      ``layout`` says how the engine keeps it. Trainable weights are Parameters, others buffers.
    - ``weights``, ``trainable_weights``, ``non_trainable_weights`` (the stored tensors, in the
      order added); ``get_weights()`` / ``set_weights(arrays)`` as NumPy arrays in Keras's layouts
      and order; ``count_params()``; ``get_config()`` / ``from_config(config)``.
    - ``input_spec``: ``{"ndim": n or None, "min_ndim": n, "axes": {axis: size}, "layout": text}``,
      set by ``build``; each call is checked against it, naming the layer and the likely fix.
    - Keyword arguments ``input_shape=`` (without the batch axis), ``input_dim=`` and ``batch_size=``
      give a first layer of a ``Sequential`` its input, as in Keras.
    """

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__()
        where = type(self).__name__
        unknown = [k for k in kwargs if k not in _LAYER_OPTIONS]
        if unknown:
            raise ArgumentTypeError(f"{where}: unexpected argument {unknown[0]!r}; check the spelling against "
                                    f"Keras's {where} (arguments: {_arguments_of(type(self))})")
        if name is not None and (not isinstance(name, str) or not name):
            raise ArgumentTypeError(f"{where}: name must be a non-empty str, got {name!r}")
        checks.flag(where, "trainable", trainable)
        object.__setattr__(self, "name", name or graph.unique_name(graph.snake_case(where)))
        object.__setattr__(self, "dtype", _dtype_name(where, dtype))
        object.__setattr__(self, "built", False)
        object.__setattr__(self, "training", False)  # as in Keras, a call is inference unless fit (or training=True)
        object.__setattr__(self, "_trainable", trainable)
        object.__setattr__(self, "_weights", [])
        object.__setattr__(self, "_inbound_nodes", [])
        object.__setattr__(self, "_config", {})
        object.__setattr__(self, "input_spec", None)
        object.__setattr__(self, "_batch_input_shape", _batch_input_shape(where, kwargs))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``build`` is wrapped, as Keras does: once it has run the layer is
        ``built``; if it fails, the weights it made are taken off again."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("build")
        if own is None or getattr(own, "_wrapped", False):
            return

        @functools.wraps(own)
        def build(self: Layer, input_shape: Any = None, *args: Any, **kw: Any) -> None:
            try:
                own(self, input_shape, *args, **kw)
            except Exception:
                self._unbuild()
                raise
            object.__setattr__(self, "built", True)

        build._wrapped = True
        cls.build = build

    # --- Keras's life cycle ----------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        """Make the weights for inputs of ``input_shape`` (the batch axis None). Layers without weights keep this."""

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: define call(self, inputs) in your Layer subclass")

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape for ``input_shape`` (batch axis None): the layer run on a zero batch of one.

        Sizes left open (``keras.Input(shape=(None, None, 3))``) are tried at two sizes; an output
        size that follows them is open (None) too."""
        shapes = [self._output_for(input_shape, size) for size in _TRIAL_SIZES]
        if not _any_open(input_shape):
            return shapes[0]
        return _open_where_different(shapes[0], shapes[1])

    def _output_for(self, input_shape: Any, size: int) -> Any:
        inputs = _zeros_like_shape(input_shape, self._backend(), self.dtype, size)
        with no_grad(), self.switched_mode(training=False):
            out = self.call(inputs, **self._training_argument(False))
        return _symbolic_shape(out, input_shape)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and graph.has_keras_tensor(args[0]):
            return self._symbolic_call(args[0], *args[1:], **kwargs)
        return super().__call__(*args, **kwargs)

    def forward(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if not self.built:
            self._build_for(graph.shapes_of(inputs))
        else:
            self._check_input(inputs)
        return self.call(inputs, *args, **self._training_argument(training), **kwargs)

    def _training_argument(self, training: bool | None) -> dict:
        """{"training": flag} for a ``call`` that takes it (None becomes the module's own flag)."""
        if not _takes_training(type(self)):
            return {}
        return {"training": self.training if training is None else bool(training)}

    def _build_for(self, input_shape: Any) -> None:
        """build once, with the batch axis as None; a build that fails leaves no weight behind."""
        self.build(_batchless(input_shape))
        object.__setattr__(self, "built", True)

    def _unbuild(self) -> None:
        for w in self._weights:
            self._parameters.pop(w.attr, None)
            self._buffers.pop(w.attr, None)
            object.__setattr__(self, w.attr, None)
        self._weights.clear()
        object.__setattr__(self, "built", False)
        object.__setattr__(self, "input_spec", None)

    def _symbolic_call(self, inputs: Any, **kwargs: Any) -> Any:
        """A call on KerasTensors: build, work out the output shapes, record a Node; no data moves."""
        leaves: list[KerasTensor] = []
        template = graph.template_of(inputs, leaves)
        shapes = graph.shapes_of(inputs)
        was_built = self.built
        try:
            if not was_built:
                self._build_for(shapes)
            else:
                self._check_input(inputs)
            out_shape = self.compute_output_shape(shapes)
        except Exception:
            if not was_built:
                self._unbuild()
            raise
        many = isinstance(out_shape, list)
        outputs = [KerasTensor(s, self.dtype) for s in (out_shape if many else [out_shape])]
        node = Node(self, template, leaves, kwargs, outputs)
        self._inbound_nodes.append(node)
        for i, t in enumerate(outputs):
            t._keras_history = (self, node, i)
            t.name = self.name if not many else f"{self.name}_{i}"
        return outputs if many else outputs[0]

    # --- checking inputs --------------------------------------------------------------------------
    def _check_input(self, inputs: Any) -> None:
        spec = self.input_spec
        if spec is None:
            return
        for x in graph.flatten(inputs):
            shape = getattr(x, "shape", None)
            if shape is None:
                raise ArgumentTypeError(f"{self!r} expects a tensor, got {type(x).__name__}")
            rank_ok = (spec.get("ndim") is None or len(shape) == spec["ndim"]) and len(shape) >= spec.get("min_ndim", 0)
            sizes_ok = rank_ok and all(shape[axis] in (size, None) for axis, size in spec.get("axes", {}).items())
            if not sizes_ok:
                raise ShapeError(f"{self!r} expects input of shape {spec['layout']}, got {shape_text(tuple(shape))}"
                                 f"{self._shape_hint(tuple(shape))}")

    def _shape_hint(self, shape: tuple) -> str:
        """What to do about an input of the wrong shape (a layer with a channel axis says more)."""
        return ""

    # --- weights ------------------------------------------------------------------------------------
    def add_weight(self, shape: Any = None, initializer: Any = "glorot_uniform", dtype: Any = None,
                   trainable: bool = True, name: str | None = None, layout: Layout = AS_IS) -> Tensor:
        """A new weight of Keras's ``shape``, stored as attribute ``name`` in the engine's ``layout``."""
        where = f"{type(self).__name__}.add_weight"
        shape = tuple(checks.integer(where, "shape", n, 0) for n in (shape or ()))
        name = name or f"weight_{len(self._weights)}"
        dtype = _dtype_name(where, dtype) if dtype is not None else self.dtype
        array = initializers.get(initializer, where)(shape, dtype)
        xp = get_backend().xp
        array = xp.ascontiguousarray(xp.asarray(layout.to_engine(array), dtype=dtype))
        if trainable:
            setattr(self, name, Parameter(array, requires_grad=self._trainable))
        else:
            self.register_buffer(name, Tensor(array, get_backend()))
        self._weights.append(_Weight(name, shape, layout, trainable))
        return getattr(self, name)

    @property
    def weights(self) -> list[Tensor]:
        """Every weight, trainable first, in the order added (as Keras lists them)."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self) -> list[Tensor]:
        if not self._trainable:
            return []
        return [getattr(self, w.attr) for w in self._weights if w.trainable]

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        return [getattr(self, w.attr) for w in self._weights if not (w.trainable and self._trainable)]

    def _ordered_weights(self) -> list[_Weight]:
        trainable = [w for w in self._weights if w.trainable and self._trainable]
        return trainable + [w for w in self._weights if w not in trainable]

    def get_weights(self) -> list:
        """The weights as NumPy arrays in Keras's layouts and order."""
        out = []
        for w in self._ordered_weights():
            t = getattr(self, w.attr)
            out.append(t.backend_object.to_host(w.layout.to_keras(t.data)).reshape(w.shape).copy())
        return out

    def set_weights(self, weights: list) -> None:
        """Copy NumPy arrays in Keras's layouts into the weights (all checked first: none or all change)."""
        own = self._ordered_weights()
        weights = list(weights)
        if len(weights) != len(own):
            raise ArgumentError(f"{self!r}.set_weights: expected {len(own)} arrays "
                                f"({', '.join(w.attr for w in own) or 'none'}), got {len(weights)}")
        for w, value in zip(own, weights):
            if tuple(getattr(value, "shape", ())) != w.shape:
                raise ShapeError(f"{self!r}.set_weights: {w.attr} must have Keras's shape {shape_text(w.shape)}, "
                                 f"got {shape_text(tuple(getattr(value, 'shape', ())))}")
        for w, value in zip(own, weights):
            t = getattr(self, w.attr)
            value = value.numpy() if isinstance(value, Tensor) else value
            t.data[...] = w.layout.to_engine(t.backend_object.asarray(value, dtype=t.dtype))
            t.bump_version()

    def count_params(self) -> int:
        if not self.built:
            raise ArgumentError(f"{self!r}.count_params: the layer is not built yet; call it on an input, "
                                "or build it with layer.build(input_shape)")
        return sum(getattr(self, w.attr).size for w in self._weights)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = checks.flag(type(self).__name__, "trainable", value)
        object.__setattr__(self, "_trainable", value)
        for w in self._weights:
            if w.trainable:
                getattr(self, w.attr).requires_grad = value

    # --- configuration and description ----------------------------------------------------------------
    def _remember(self, **config: Any) -> None:
        """Keep the constructor's arguments for ``get_config``."""
        self._config.update(config)

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        config.update(self._config)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**config)

    @property
    def input(self) -> Any:
        """The KerasTensor(s) of this layer's first call on KerasTensors."""
        return self._first_node("input").arguments(lambda t: t)

    @property
    def output(self) -> Any:
        node = self._first_node("output")
        return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)

    def _first_node(self, what: str) -> Node:
        if not self._inbound_nodes:
            raise ArgumentError(f"{self!r}.{what}: the layer has not been called on a keras.Input yet")
        return self._inbound_nodes[0]

    def _backend(self) -> Any:
        param = next(iter(self.parameters()), None)
        return param.backend_object if param is not None else get_backend()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


# --------------------------------------------------------------------------- helpers

_TAKES_TRAINING: dict[type, bool] = {}


def _takes_training(cls: type) -> bool:
    if cls not in _TAKES_TRAINING:
        params = inspect.signature(cls.call).parameters
        _TAKES_TRAINING[cls] = "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return _TAKES_TRAINING[cls]


def _arguments_of(cls: type) -> str:
    names = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "kwargs", "args")]
    return ", ".join(names + ["input_shape"])


def _dtype_name(where: str, dtype: Any) -> str:
    if dtype is None:
        return "float32"
    name = getattr(dtype, "name", dtype)
    if name not in ("float32", "float64", "float16"):
        raise ArgumentError(f"{where}: dtype must be 'float32', 'float64' or 'float16', got {dtype!r}")
    return str(name)


def _batch_input_shape(where: str, options: dict) -> tuple | None:
    """(batch, *input_shape) from Keras's input_shape= / input_dim= / batch_input_shape=, or None."""
    batch = options.get("batch_size")
    if options.get("batch_input_shape") is not None:
        shape = tuple(options["batch_input_shape"])
        return shape
    if options.get("input_shape") is not None:
        shape = options["input_shape"]
        shape = (shape,) if checks.is_int(shape) else tuple(shape)
    elif options.get("input_dim") is not None:
        shape = (checks.integer(where, "input_dim", options["input_dim"], 1),)
    else:
        return None
    for n in shape:
        if n is not None:
            checks.integer(where, "input_shape", n, 1)
    return (batch,) + shape


def _batchless(shape: Any) -> Any:
    """The shape(s) with the batch axis as None."""
    if isinstance(shape, list):
        return [_batchless(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _batchless(v) for k, v in shape.items()}
    return (None,) + tuple(shape[1:]) if len(shape) else ()


# The sizes an open (None) axis is tried at when working out a layer's output shape.
_TRIAL_SIZES = (32, 37)


def _zeros_like_shape(shape: Any, backend: Any, dtype: str, open_size: int = _TRIAL_SIZES[0]) -> Any:
    if isinstance(shape, list):
        return [_zeros_like_shape(s, backend, dtype, open_size) for s in shape]
    if isinstance(shape, dict):
        return {k: _zeros_like_shape(v, backend, dtype, open_size) for k, v in shape.items()}
    concrete = (1 if shape[0] is None else shape[0],) + tuple(open_size if n is None else n for n in shape[1:])
    return Tensor(backend.xp.zeros(concrete, dtype=dtype), backend)


def _any_open(shape: Any) -> bool:
    if isinstance(shape, (list, dict)):
        return any(_any_open(s) for s in (shape if isinstance(shape, list) else shape.values()))
    return any(n is None for n in shape[1:])


def _open_where_different(a: Any, b: Any) -> Any:
    """Shape ``a`` with None wherever shape ``b`` (the same output at another input size) differs."""
    if isinstance(a, list):
        return [_open_where_different(x, y) for x, y in zip(a, b)]
    return tuple(p if p == q else None for p, q in zip(a, b))


def _symbolic_shape(out: Any, input_shape: Any) -> Any:
    """The output's shape(s) with the batch axis None again where the input's was."""
    first = input_shape
    while isinstance(first, (list, dict)):
        first = first[0] if isinstance(first, list) else next(iter(first.values()))
    batch = first[0] if first else None
    if isinstance(out, (list, tuple)):
        return [_symbolic_shape(o, input_shape) for o in out]
    return (batch,) + tuple(out.shape[1:])
