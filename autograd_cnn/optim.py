"""Optimizers and learning-rate schedules.

Each update rule equals PyTorch's for the same hyper-parameters and runs in place on the
parameter arrays through the parameter's backend (its arithmetic is in ``backends/updates.py``;
the classes here keep the hyper-parameters and the state): no graph, few temporaries, and on a
GPU one fused kernel per parameter for SGD with momentum, RMSprop and Adam. Optimizer
state is created on the parameter's backend and follows the parameter if ``Module.to``
moves it (on the next step).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import checks
from .backends import backend_of
from .errors import ArgumentError, ArgumentTypeError, CheckpointError
from .tensor import Tensor

# A hyper-parameter's allowed values, as checks.real's (low, high, low_open, high_open).
AT_LEAST_0 = (0.0, None, False, False)
ABOVE_0 = (0.0, None, True, False)  # eps: 0 would divide 0 by 0 for a parameter whose gradient is 0
FROM_0_TO_1 = (0.0, 1.0, False, False)
FROM_0_BELOW_1 = (0.0, 1.0, False, True)  # a moving average's decay: 1 would never move


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``step``, ``state_dict``/``load_state_dict``.

    ``params`` is an iterable of Parameters, or of dicts ``{"params": [...], "lr": ...}``
    that override the defaults per group, as in PyTorch. Every hyper-parameter is checked here
    (``limits``), and again when a state dict or ``opt.lr = ...`` changes it.
    """

    limits: dict[str, tuple] = {}  # each number hyper-parameter's allowed interval

    def __init__(self, params: Iterable, defaults: dict) -> None:
        name = type(self).__name__
        self.defaults = defaults
        self.param_groups: list[dict] = []
        for group in _groups(name, params):
            merged = {**defaults, **group, "params": list(group["params"])}
            self._check_group(merged)
            self.param_groups.append(merged)
        _check_params(name, [p for group in self.param_groups for p in group["params"]])
        self.state: dict[Tensor, dict] = {}

    def _check_group(self, group: dict) -> None:
        """Every setting of one parameter group is known and in range."""
        name = type(self).__name__
        unknown = sorted(set(group) - set(self.defaults) - {"params", "initial_lr"})
        if unknown:
            raise ArgumentError(f"{name}: a parameter group has the unknown setting {unknown[0]!r}; "
                                f"{name}'s settings are {', '.join(sorted(self.defaults))}")
        for key, limits in self.limits.items():
            checks.real(name, key, group[key], *limits)

    @property
    def lr(self) -> float:
        """The first group's learning rate (setting it sets every group's)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        checks.real(type(self).__name__, "lr", value, *self.limits.get("lr", AT_LEAST_0))
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self) -> None:
        """Forget the gradients (the next backward starts from nothing)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if "eps" in group:
                    check_eps(type(self).__name__, group["eps"], p.dtype)
                self._update(p.data, p.grad.data, self._state_for(p), group, p.backend_object)
                p.bump_version()  # a backward through a graph that saved p now refuses it

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def _decayed(p: Any, g: Any, group: dict, backend: Any) -> Any:
        """g with the group's L2 weight decay folded in (g itself when there is none)."""
        return backend.weight_decay_grad(p, g, group["weight_decay"]) if group["weight_decay"] else g

    def _state_for(self, p: Tensor) -> dict:
        """The parameter's state, its arrays moved to the parameter's backend and dtype if needed."""
        state = self.state.setdefault(p, {})
        for key, value in state.items():
            if not hasattr(value, "shape") or value.ndim == 0:
                continue
            if not p.backend_object.is_array(value):
                host = value if isinstance(value, np.ndarray) else backend_of(value).to_host(value)
                state[key] = value = p.backend_object.from_host(host)
            if value.dtype != p.dtype:
                state[key] = value.astype(p.dtype)
        return state

    # --- saving and restoring ----------------------------------------------------
    def _all_params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """{"state": {index: {name: host array or number}}, "param_groups": [hyper-parameters]}."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        state = {}
        for p, s in self.state.items():
            state[index[id(p)]] = {k: (p.backend_object.to_host(v) if hasattr(v, "shape") else v) for k, v in s.items()}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict`` returned (arrays move to each parameter's backend on the next step)."""
        name = type(self).__name__
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if not isinstance(state_dict, dict) or groups is None or "state" not in state_dict:
            raise CheckpointError(f"{name}.load_state_dict: expects a dict with 'state' and 'param_groups' "
                                  "(what optimizer.state_dict() returns)")
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise CheckpointError(f"{name}.load_state_dict: the saved groups hold "
                             f"{[len(g['params']) for g in groups]} parameters, this optimizer "
                                  f"{[len(g['params']) for g in self.param_groups]}")
        for saved, own in zip(groups, self.param_groups):
            restored = {**own, **{k: (tuple(v) if isinstance(v, list) and k != "params" else v)
                                  for k, v in saved.items() if k != "params"}}
            self._check_group(restored)  # a damaged or edited checkpoint is refused, not trained with
            own.update(restored)
        params = self._all_params()
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            restored = {}
            for key, value in s.items():
                value = value.numpy() if isinstance(value, Tensor) else value
                if hasattr(value, "shape") and value.ndim and tuple(value.shape) != p.shape:
                    raise CheckpointError(f"{name}.load_state_dict: state {key!r} of parameter {i} has shape "
                                          f"{tuple(value.shape)}, the parameter {p.shape}")
                restored[key] = value.item() if hasattr(value, "shape") and value.ndim == 0 else value
            self.state[p] = restored

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.param_groups[0].items() if k != "params")
        return f"{type(self).__name__}({hyper})"


@functools.lru_cache(maxsize=64)
def check_eps(name: str, eps: float, dtype: Any) -> None:
    """eps is above 0 in the parameter's own dtype: 1e-8 is 0 in float16, and a zero eps divides
    0 by 0 for a parameter whose gradient is 0 (NaN, silently)."""
    if dtype.kind == "f" and dtype.type(eps) == 0:
        raise ArgumentError(f"{name}: eps={eps!r} is 0 in the parameters' {dtype}; use at least "
                            f"{float(np.finfo(dtype).smallest_normal):.3g}")


def _groups(name: str, params: Any) -> list:
    """``params`` as a list of group dicts, each with its "params"."""
    if isinstance(params, Tensor) or hasattr(params, "parameters") or not isinstance(params, Iterable) \
            or isinstance(params, (str, bytes, dict)):
        raise ArgumentTypeError(f"{name}: params must be an iterable of tensors (or of dicts with 'params'), "
                                f"got {type(params).__name__}; pass model.parameters()")
    params = list(params)
    if not params:
        raise ArgumentError(f"{name}: params is an empty parameter list; pass model.parameters()")
    are_dicts = [isinstance(p, dict) for p in params]
    if not any(are_dicts):
        return [{"params": params}]
    if not all(are_dicts):
        raise ArgumentTypeError(f"{name}: params mixes tensors and dicts; give tensors, or dicts "
                                "{'params': [...], 'lr': ...} only")
    for i, group in enumerate(params):
        if "params" not in group:
            raise ArgumentError(f"{name}: parameter group {i} has no 'params' entry; give "
                                "{'params': [tensors], ...}")
    return [{**group, "params": _group_params(name, group["params"])} for group in params]


def _group_params(name: str, params: Any) -> list:
    if isinstance(params, Tensor):
        return [params]  # one tensor as a group's params, as PyTorch takes it
    if not isinstance(params, Iterable) or hasattr(params, "parameters"):
        raise ArgumentTypeError(f"{name}: a group's params must be tensors, got {type(params).__name__}; "
                                "pass model.parameters()")
    return list(params)


def _check_params(name: str, params: list) -> None:
    """Each parameter is a floating-point leaf tensor, given once."""
    seen: set[int] = set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise ArgumentTypeError(f"{name}: params[{i}] is a {type(p).__name__}, not a tensor; "
                                    "pass model.parameters()")
        if p.dtype.kind != "f":
            raise ArgumentTypeError(f"{name}: params[{i}] is an {p.dtype} tensor; only floating-point "
                                    "tensors have gradients to follow")
        if not p.is_leaf:
            raise ArgumentError(f"{name}: params[{i}] is not a leaf tensor (an op made it), so backward "
                                "never fills its .grad; optimize the tensors you created")
        if id(p) in seen:
            raise ArgumentError(f"{name}: params[{i}] is given twice; each step would update it twice")
        seen.add(id(p))


class SGD(Optimizer):
    """p -= lr * g, with optional momentum (buf = momentum * buf + g), Nesterov and weight decay."""

    limits = {"lr": AT_LEAST_0, "momentum": FROM_0_BELOW_1, "weight_decay": AT_LEAST_0, "dampening": FROM_0_TO_1}

    def __init__(self, params: Iterable, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, dampening: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                                      dampening=dampening))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        checks.flag("SGD", "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ArgumentError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        g = self._decayed(p, g, group, backend)
        momentum = group["momentum"]
        if not momentum:
            backend.sgd_update(p, g, group["lr"])
        elif "momentum_buffer" not in state:  # the first step starts the buffer at g, as PyTorch
            state["momentum_buffer"] = backend.sgd_momentum_start(p, g, group["lr"], momentum, group["nesterov"])
        else:
            backend.sgd_momentum_update(p, g, state["momentum_buffer"], group["lr"], momentum,
                                        group["dampening"], group["nesterov"])


class RMSprop(Optimizer):
    """v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps). Keras's defaults (alpha 0.9, eps 1e-7)."""

    limits = {"lr": AT_LEAST_0, "alpha": FROM_0_BELOW_1, "eps": ABOVE_0, "momentum": FROM_0_BELOW_1,
              "weight_decay": AT_LEAST_0}

    def __init__(self, params: Iterable, lr: float = 1e-3, alpha: float = 0.9, eps: float = 1e-7,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay))

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        g = self._decayed(p, g, group, backend)
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = backend.xp.zeros_like(p)
        state["step"] += 1
        buf = None
        if group["momentum"] > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = backend.xp.zeros_like(p)
        backend.rmsprop_update(p, g, state["square_avg"], buf, group["lr"], group["alpha"], group["eps"],
                               group["momentum"])


class Adam(Optimizer):
    """m, v = moving averages of g and g^2; p -= lr m_hat / (sqrt(v_hat) + eps) (bias-corrected)."""

    decoupled = False  # AdamW decays the weights directly instead of adding wd * p to g
    limits = {"lr": AT_LEAST_0, "eps": ABOVE_0, "weight_decay": AT_LEAST_0}

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        name, betas = type(self).__name__, group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ArgumentTypeError(f"{name}: betas must be a pair (beta1, beta2), each in [0, 1), got {betas!r}")
        for i, beta in enumerate(betas):
            checks.real(name, f"betas[{i}]", beta, *FROM_0_BELOW_1)
        group["betas"] = tuple(betas)

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
        if wd and self.decoupled:
            backend.decoupled_weight_decay(p, lr, wd)
        elif wd:
            g = backend.weight_decay_grad(p, g, wd)
        if "exp_avg" not in state:
            state.update(step=0, exp_avg=backend.xp.zeros_like(p), exp_avg_sq=backend.xp.zeros_like(p))
        state["step"] += 1
        t = state["step"]
        # The bias corrections are host numbers: the update stays one pass on the device.
        backend.adam_update(p, g, state["exp_avg"], state["exp_avg_sq"], (b1, b2),
                            step_size=lr / (1 - b1 ** t), bias2_sqrt=math.sqrt(1 - b2 ** t), eps=group["eps"])


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step."""

    decoupled = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class Adadelta(Optimizer):
    """v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g; u = rho u + (1 - rho) d^2; p -= lr d."""

    limits = {"lr": AT_LEAST_0, "rho": FROM_0_TO_1, "eps": ABOVE_0, "weight_decay": AT_LEAST_0}

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.95, eps: float = 1e-7,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _update(self, p: Any, g: Any, state: dict, group: dict, backend: Any) -> None:
        g = self._decayed(p, g, group, backend)
        if "square_avg" not in state:
            state.update(step=0, square_avg=backend.xp.zeros_like(p), acc_delta=backend.xp.zeros_like(p))
        state["step"] += 1
        backend.adadelta_update(p, g, state["square_avg"], state["acc_delta"], group["lr"], group["rho"],
                                group["eps"])


# --------------------------------------------------------------------------- schedules


class _Schedule:
    """Sets each group's lr from its initial lr and the epoch count; call step() once per epoch."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ArgumentTypeError(f"{type(self).__name__}: optimizer must be an optimizer object "
                                    f"(optim.SGD(...), ...), got {optimizer!r}")
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0

    def _lr(self, base: float) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self._lr(base)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch, self.base_lrs = int(state["last_epoch"]), list(state["base_lrs"])


class StepLR(_Schedule):
    """lr = initial_lr * gamma ** (epoch // step_size)"""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        checks.integer("StepLR", "step_size (epochs)", step_size, 1)
        checks.real("StepLR", "gamma", gamma, *AT_LEAST_0)
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def _lr(self, base: float) -> float:
        return base * self.gamma ** (self.last_epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    """lr = eta_min + (initial_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2"""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803 (PyTorch's name)
        checks.integer("CosineAnnealingLR", "T_max (epochs)", T_max, 1)
        checks.real("CosineAnnealingLR", "eta_min", eta_min, *AT_LEAST_0)
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def _lr(self, base: float) -> float:
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2


__all__ = ["SGD", "Adadelta", "Adam", "AdamW", "CosineAnnealingLR", "Optimizer", "RMSprop", "StepLR"]
