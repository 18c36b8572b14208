"""Keras's optimizers, with Keras 3's argument names, defaults and update formulas.

    model.compile(optimizer=keras.optimizers.Adadelta(), ...)      # or optimizer="adadelta"

A Keras optimizer is made without parameters; ``compile`` binds it to the model's (``build``).
Each class is an ``optim.Optimizer``, so the Trainer, ``state_dict`` and the step guard treat it
as any other; only the arithmetic is Keras's where it differs from PyTorch's (it lives with the
others in ``backends/updates.py``):

- SGD: ``m = momentum m - lr g; p += m`` (the velocity holds the learning rate);
- RMSprop: ``p -= lr g / sqrt(v + epsilon)``, epsilon inside the root;
- Adam: ``p -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon)``, epsilon outside
  the root and not bias-corrected;
- Adadelta and Adagrad as Keras writes them, Adadelta's default ``learning_rate=0.001``;
- ``weight_decay`` on any of them is decoupled, as in Keras: ``p -= lr weight_decay p`` first;
- ``clipnorm`` (each gradient's norm), ``global_clipnorm`` (all together) or ``clipvalue``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import checks, optim
from ..errors import ArgumentError, ArgumentTypeError, CheckpointError, UsageError
from ..optim import ABOVE_0, AT_LEAST_0, FROM_0_BELOW_1, FROM_0_TO_1

# Keras 3 arguments this package does not implement, accepted at their defaults (a saved
# model's optimizer config lists them all).
_UNSUPPORTED = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                "loss_scale_factor": None, "gradient_accumulation_steps": None}
# What the groups call a hyper-parameter -> Keras's name (``lr`` is what the Trainer, the step
# guard and the schedules read).
_KERAS_NAME = {"lr": "learning_rate"}


class Optimizer(optim.Optimizer):
    """Keras's base optimizer: the hyper-parameters when made, the parameters at ``build``.

    ``learning_rate`` reads and sets the rate (also after compile); ``iterations`` counts steps.
    """

    limits: dict[str, tuple] = {"lr": AT_LEAST_0, "weight_decay": AT_LEAST_0}
    keras_name = "optimizer"  # Keras's default ``name``

    def __init__(self, learning_rate: float, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None,
                 hyper: dict | None = None, **kwargs: Any) -> None:
        cls = type(self).__name__
        for key, value in kwargs.items():
            if key not in _UNSUPPORTED:
                known = ("learning_rate", *(hyper or {}), "weight_decay", "clipnorm", "clipvalue",
                         "global_clipnorm", "name")
                raise ArgumentTypeError(f"{cls}: unknown argument {key!r}; its arguments are {', '.join(known)}")
            if value != _UNSUPPORTED[key]:
                raise ArgumentError(f"{cls}: {key}={value!r} is not available in autograd_cnn.keras; "
                                    f"leave it at {_UNSUPPORTED[key]!r}")
        clips = {k: v for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                   ("global_clipnorm", global_clipnorm)) if v is not None}
        if len(clips) > 1:
            raise ArgumentError(f"{cls}: give at most one of clipnorm, clipvalue and global_clipnorm, "
                                f"got {', '.join(clips)}")
        self.clip = {k: checks.real(cls, k, v, *ABOVE_0) for k, v in clips.items()}
        if name is not None and not isinstance(name, str):
            raise ArgumentTypeError(f"{cls}: name must be a str or None, got {name!r}")
        self.name = name or self.keras_name
        self.defaults = {"lr": learning_rate, "weight_decay": 0.0 if weight_decay is None else weight_decay,
                         **(hyper or {})}
        self._check_group(self.defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}

    def _check_group(self, group: dict) -> None:
        """Every setting is known and in range; errors say Keras's names (``learning_rate``)."""
        cls = type(self).__name__
        unknown = sorted(set(group) - set(self.defaults) - {"params", "initial_lr"})
        if unknown:
            raise ArgumentError(f"{cls}: a parameter group has the unknown setting {unknown[0]!r}")
        for key, limits in self.limits.items():
            group[key] = checks.real(cls, _KERAS_NAME.get(key, key), group[key], *limits)

    # --- binding: compile calls build(model.parameters()) ------------------------------
    def build(self, var_list: Iterable) -> None:
        """Bind to these parameters (``compile`` does it). Bound again to the same ones it keeps
        its state; to others it starts afresh."""
        params = list(var_list)
        if self.param_groups and [id(p) for p in self._all_params()] == [id(p) for p in params]:
            return
        optim.Optimizer.__init__(self, params, self.defaults)

    @property
    def built(self) -> bool:
        return bool(self.param_groups)

    @property
    def learning_rate(self) -> float:
        return self.param_groups[0]["lr"] if self.param_groups else self.defaults["lr"]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        value = checks.real(type(self).__name__, "learning_rate", value, *self.limits["lr"])
        self.defaults["lr"] = value
        for group in self.param_groups:
            group["lr"] = value

    lr = learning_rate  # the name the rest of the package reads

    @property
    def iterations(self) -> int:
        """How many steps this optimizer has taken."""
        return max((s.get("step", 0) for s in self.state.values()), default=0)

    # --- the step: clip, decay, update ----------------------------------------------
    def step(self) -> None:
        """Update every parameter that has a gradient (Keras's order: clip, weight decay, update)."""
        if not self.param_groups:
            raise UsageError(f"{type(self).__name__}: not bound to any parameters yet; pass it to "
                             "model.compile(optimizer=...), or call build(model.parameters())")
        grads = self._clipped([p for p in self._all_params() if p.grad is not None])
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if "epsilon" in group:
                    optim.check_eps(type(self).__name__, group["epsilon"], p.dtype)
                backend, state = p.backend_object, self._state_for(p)
                if group["weight_decay"]:
                    backend.decoupled_weight_decay(p.data, group["lr"], group["weight_decay"])
                state["step"] = state.get("step", 0) + 1
                self._update(p.data, grads[id(p)], state, group, backend)
                p.bump_version()

    def _clipped(self, params: list) -> dict:
        """Each parameter's gradient array, clipped as ``clipnorm``, ``global_clipnorm`` or ``clipvalue`` say
        (new arrays then; the norms stay on the backend: no wait for a GPU)."""
        grads = {id(p): p.grad.data for p in params}
        if not self.clip or not params:
            return grads
        (kind, limit), = self.clip.items()
        xp = params[0].backend_object.xp
        if kind == "clipvalue":
            return {k: xp.clip(g, -limit, limit) for k, g in grads.items()}
        if kind == "clipnorm":
            return {k: g * (limit / xp.maximum(xp.sqrt((g * g).sum()), limit)) for k, g in grads.items()}
        norm = xp.sqrt(sum((g.astype(xp.float64) ** 2).sum() for g in grads.values()))
        scale = limit / xp.maximum(norm, limit)
        return {k: g * scale.astype(g.dtype) for k, g in grads.items()}

    # --- Keras's saved variables: the iteration count, the rate, then each parameter's slots --
    # Keras keeps each parameter's slots together (Adam: m1, v1, m2, v2) or each kind in a row
    # (RMSprop: every velocity, then every momentum); a .keras file lists them in that order.
    interleaved_slots = False

    def _slot_names(self, group: dict) -> list[str]:
        """The arrays kept per parameter, under Keras's names, in its order (none for plain SGD)."""
        return []

    def _fresh_slot(self, name: str, group: dict, shape: tuple, dtype: Any) -> np.ndarray:
        """A slot as Keras makes it before the first step: zeros."""
        return np.zeros(shape, dtype=dtype)

    def keras_variables(self, weights: list[tuple[Any, Any, tuple]]) -> list[np.ndarray]:
        """``[iterations, learning_rate, slots...]`` as Keras 3 saves them in a ``.keras`` file, for
        ``weights``: (parameter, its Layout, Keras's shape) in the model's trainable order."""
        group = self.param_groups[0] if self.param_groups else self.defaults
        names = self._slot_names(group)

        def slot(p: Any, layout: Any, shape: tuple, name: str) -> np.ndarray:
            value = self.state.get(p, {}).get(name)
            host = self._fresh_slot(name, group, tuple(p.shape), p.dtype) if value is None else \
                p.backend_object.to_host(value)
            return np.ascontiguousarray(layout.to_keras(host)).reshape(shape)

        return [np.array(self.iterations, dtype=np.int64), np.array(self.learning_rate, dtype=np.float32),
                *(slot(*w, n) for w, n in self._slot_order(weights, names))]

    def _slot_order(self, weights: list, names: list[str]) -> list[tuple[Any, str]]:
        """(weight, slot name) in the order Keras lists its variables."""
        if self.interleaved_slots:
            return [(w, n) for w in weights for n in names]
        return [(w, n) for n in names for w in weights]

    def set_keras_variables(self, weights: list[tuple[Any, Any, tuple]], arrays: list, where: str) -> None:
        """Take back what ``keras_variables`` gives (or Keras 3 saved): the slots, the step count
        and the rate, so that training goes on as it would have."""
        group = self.param_groups[0] if self.param_groups else self.defaults
        names = self._slot_names(group)
        if len(arrays) != 2 + len(names) * len(weights):
            raise CheckpointError(f"{where}: the file holds {len(arrays)} optimizer variables; {type(self).__name__} "
                                  f"of this model keeps {2 + len(names) * len(weights)} (the count, the rate and "
                                  f"{', '.join(names) or 'nothing'} for each of {len(weights)} weights)")
        pairs = list(zip(self._slot_order(weights, names), arrays[2:]))
        for ((_, _, shape), name), value in pairs:  # all checked before any is taken
            if tuple(value.shape) != tuple(shape):
                raise CheckpointError(f"{where}: the optimizer's {name} for a weight of Keras's shape {shape} has "
                                      f"shape {tuple(value.shape)}; is it the file of this model?")
        iterations = int(np.asarray(arrays[0]))
        for ((p, layout, _), name), value in pairs:
            engine = np.ascontiguousarray(layout.to_engine(np.asarray(value, dtype=p.dtype)))
            self.state.setdefault(p, {})[name] = p.backend_object.from_host(engine)
        if iterations:
            for p, _, _ in weights:
                self.state.setdefault(p, {})["step"] = iterations
        rate = float(np.asarray(arrays[1]))
        if float(np.float32(self.learning_rate)) != rate:  # the rate was changed after compile
            self.learning_rate = rate

    # --- Keras's config -------------------------------------------------------------------
    def get_config(self) -> dict:
        """The arguments that make this optimizer again, with Keras's names (``from_config`` takes them)."""
        config = {"name": self.name, "learning_rate": self.learning_rate,
                  "weight_decay": self.defaults["weight_decay"] or None,
                  "clipnorm": None, "global_clipnorm": None, "clipvalue": None, **self.clip}
        config.update({k: v for k, v in self.defaults.items() if k not in ("lr", "weight_decay")})
        return config

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        return cls(**config)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None and k != "name")
        return f"{type(self).__name__}({settings})"


class SGD(Optimizer):
    """Gradient descent: ``p -= learning_rate g``; with momentum ``m = momentum m - learning_rate g;
    p += m`` (Nesterov: ``p += momentum m - learning_rate g``)."""

    limits = {**Optimizer.limits, "momentum": FROM_0_TO_1}
    keras_name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None, **kwargs: Any) -> None:
        checks.flag("SGD", "nesterov", nesterov)
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         dict(momentum=momentum, nesterov=nesterov), **kwargs)

    def _slot_names(self, group: dict) -> list[str]:
        return ["momentum"] if group["momentum"] else []

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        if not group["momentum"]:
            backend.sgd_update(p, g, group["lr"])
            return
        if "momentum" not in state:
            state["momentum"] = backend.xp.zeros_like(p)
        backend.keras_sgd_momentum_update(p, g, state["momentum"], group["lr"], group["momentum"],
                                          group["nesterov"])


class RMSprop(Optimizer):
    """``v = rho v + (1 - rho) g^2; p -= learning_rate g / sqrt(v + epsilon)``; ``centered`` takes the
    variance (v minus the squared moving mean of g); ``momentum`` accumulates the increments."""

    limits = {**Optimizer.limits, "rho": FROM_0_BELOW_1, "momentum": FROM_0_BELOW_1, "epsilon": ABOVE_0}
    keras_name = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None, **kwargs: Any) -> None:
        checks.flag("RMSprop", "centered", centered)
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         dict(rho=rho, momentum=momentum, epsilon=epsilon, centered=centered), **kwargs)

    def _slot_names(self, group: dict) -> list[str]:
        return ["velocity"] + ["momentum"] * (group["momentum"] > 0) + ["average_gradient"] * group["centered"]

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        zeros = backend.xp.zeros_like
        if "velocity" not in state:
            state["velocity"] = zeros(p)
            if group["centered"]:
                state["average_gradient"] = zeros(p)
            if group["momentum"] > 0:
                state["momentum"] = zeros(p)
        backend.keras_rmsprop_update(p, g, state["velocity"], state.get("average_gradient"), state.get("momentum"),
                                     group["lr"], group["rho"], group["epsilon"], group["momentum"])


class Adam(Optimizer):
    """``m, v`` = moving averages of g and g^2;
    ``p -= learning_rate sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon)``."""

    limits = {**Optimizer.limits, "beta_1": FROM_0_BELOW_1, "beta_2": FROM_0_BELOW_1, "epsilon": ABOVE_0}
    keras_name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None, **kwargs: Any) -> None:
        if checks.flag(type(self).__name__, "amsgrad", amsgrad):
            raise ArgumentError(f"{type(self).__name__}: amsgrad=True is not available in autograd_cnn.keras; "
                                "leave it False")
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=False), **kwargs)

    interleaved_slots = True

    def _slot_names(self, group: dict) -> list[str]:
        return ["momentum", "velocity"]

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        if "momentum" not in state:
            state.update(momentum=backend.xp.zeros_like(p), velocity=backend.xp.zeros_like(p))
        b1, b2, t = group["beta_1"], group["beta_2"], state["step"]
        # Keras corrects the bias in the step size alone (epsilon stays as given): with
        # bias2_sqrt=1 the shared kernel computes exactly alpha m / (sqrt(v) + epsilon).
        alpha = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        backend.adam_update(p, g, state["momentum"], state["velocity"], (b1, b2), step_size=alpha,
                            bias2_sqrt=1.0, eps=group["epsilon"])


class AdamW(Adam):
    """Adam with weight decay on by default (``weight_decay=0.004``; decoupled, as for every Keras optimizer)."""

    keras_name = "adamw"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, name, **kwargs)


class Adadelta(Optimizer):
    """``v = rho v + (1 - rho) g^2; d = sqrt(u + epsilon) / sqrt(v + epsilon) g;
    u = rho u + (1 - rho) d^2; p -= learning_rate d`` (Keras 3's default rate is 0.001)."""

    limits = {**Optimizer.limits, "rho": FROM_0_TO_1, "epsilon": ABOVE_0}
    keras_name = "adadelta"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         dict(rho=rho, epsilon=epsilon), **kwargs)

    interleaved_slots = True

    def _slot_names(self, group: dict) -> list[str]:
        return ["accumulated_grad", "accumulated_delta_var"]

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        if "accumulated_grad" not in state:
            state.update(accumulated_grad=backend.xp.zeros_like(p), accumulated_delta_var=backend.xp.zeros_like(p))
        backend.adadelta_update(p, g, state["accumulated_grad"], state["accumulated_delta_var"], group["lr"],
                                group["rho"], group["epsilon"])


class Adagrad(Optimizer):
    """``a += g^2; p -= learning_rate g / sqrt(a + epsilon)``, ``a`` starting at ``initial_accumulator_value``."""

    limits = {**Optimizer.limits, "initial_accumulator_value": AT_LEAST_0, "epsilon": ABOVE_0}
    keras_name = "adagrad"

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         dict(initial_accumulator_value=initial_accumulator_value, epsilon=epsilon), **kwargs)

    def _slot_names(self, group: dict) -> list[str]:
        return ["accumulator"]

    def _fresh_slot(self, name: str, group: dict, shape: tuple, dtype: Any) -> np.ndarray:
        return np.full(shape, group["initial_accumulator_value"], dtype=dtype)

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        if "accumulator" not in state:
            state["accumulator"] = backend.xp.full_like(p, group["initial_accumulator_value"])
        backend.adagrad_update(p, g, state["accumulator"], group["lr"], group["epsilon"])


ALL = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW, "adadelta": Adadelta, "adagrad": Adagrad}


def get(identifier: Any) -> Any:
    """An optimizer from a name (``"adam"``, ``"RMSprop"``), a config dict (``{"class_name": "Adam",
    "config": {...}}``, as ``serialize`` and a saved model give) or an optimizer object (returned as is)."""
    if identifier is None or isinstance(identifier, optim.Optimizer):
        return identifier
    if isinstance(identifier, dict):
        name, config = identifier.get("class_name"), identifier.get("config") or {}
        if not isinstance(name, str) or not isinstance(config, dict):
            raise ArgumentError(f"keras.optimizers.get: a config must be {{'class_name': ..., 'config': {{...}}}}, "
                                f"got {identifier!r}")
        return _class(name).from_config(config)
    if isinstance(identifier, str):
        return _class(identifier)()
    raise ArgumentTypeError(f"keras.optimizers.get: cannot make an optimizer of {identifier!r}; give a name "
                            f"({', '.join(ALL)}), a config dict or an optimizer object")


def _class(name: str) -> type:
    cls = ALL.get(name.lower().replace("_", ""))
    if cls is None:
        raise ArgumentError(f"keras.optimizers: unknown optimizer {name!r}; the known ones are "
                            f"{', '.join(ALL)}")
    return cls


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": ..., "config": ...}``: what ``get`` makes the optimizer again from."""
    if not isinstance(optimizer, Optimizer):
        raise ArgumentTypeError(f"keras.optimizers.serialize: expects a keras.optimizers object, got "
                                f"{type(optimizer).__name__}")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "get", "serialize"]
