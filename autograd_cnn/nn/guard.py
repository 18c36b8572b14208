"""Keeps a training step whose loss or gradients hold NaN or Inf out of the weights.

``fit`` hands each step to a ``StepGuard``: ``step()`` runs the optimizer only when the loss and
every gradient are finite, so the model keeps the weights of its last good step and the error
says where training went wrong.

On the CPU a number costs nothing to read: the guard checks on the host before the update and
raises at once. On a GPU a read makes the host wait for the device, which at every step would
cost more than the step itself; there the check stays on the device, as mixed precision's
gradient scalers do. A device flag turns false at the first bad step and remembers it (the
step, its loss, what was not finite); from then on every update is undone on the device (the
weights and the optimizer's state arrays are copied back where the flag says so); and
``report()``, called where fit reads its running loss anyway, raises.

Under several processes all must stop at the same step. The gradients are averaged, so they
agree; a loss is each process's own, so a process whose loss is not finite starts backward
from NaN instead of 1 (``backward``): its gradients all turn NaN, and the average carries
that to every process.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import optim
from ..errors import NonFiniteError
from ..tensor import Tensor


class StepGuard:
    """The optimizer's step, taken only when the loss and the gradients are finite (see above)."""

    # Backends whose numbers the host reads at no cost: checked there before each update.
    HOST_CHECKED: tuple[str, ...] = ("numpy", "numba")

    def __init__(self, optimizer: Any, model: Any, backend: Any, processes: int = 1, op: str = "fit") -> None:
        self.optimizer, self.backend, self.xp, self.op = optimizer, backend, backend.xp, op
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.processes = processes
        # The device path puts the optimizer's state back too, so it must see it: an optimizer
        # of another kind is checked on the host at each step instead.
        self.on_host = backend.name in self.HOST_CHECKED or not isinstance(optimizer, optim.Optimizer)
        self.last_good: tuple[int, int] | None = None  # (epoch, step) of the last step taken
        self.count = 0  # steps through the device path; its flag names a step by this count
        self.places: dict[int, tuple[int, int]] = {}  # count -> (epoch, step), since the last report
        self.scalars: dict[int, dict] = {}  # count -> the optimizer's host state before that step
        self.healthy: Any = None  # device bool: every step since fit began was finite
        self.first_bad: Any = None  # device [count, loss, what] of the first step that was not
        self.device_count: Any = None  # self.count, kept on the device
        self.true: Any = None  # a device True, for a parameter without a gradient

    def read(self, array: Any) -> np.ndarray:
        """A device value on the host: the guard's only reads (the device path reads only in report)."""
        return self.backend.to_host(array)

    # --- one step -------------------------------------------------------------------------
    def backward(self, loss: Tensor) -> None:
        """``loss.backward()``; under several processes a non-finite loss starts it from NaN."""
        if self.processes == 1:
            loss.backward()
            return
        one, nan = self.backend.scalar(1.0, loss.dtype), self.backend.scalar(math.nan, loss.dtype)
        loss.backward(Tensor(self.xp.where(self.xp.isfinite(loss.data), one, nan), self.backend))

    def step(self, loss: Tensor, epoch: int, step: int) -> None:
        """The optimizer's step for batch ``step`` of ``epoch`` (both from 0), if all is finite."""
        if self.on_host:
            value = float(self.read(loss.data).reshape(-1)[0])
            bad = next((name for name, p in self.named
                        if p.grad is not None and not bool(self.read(self.xp.isfinite(p.grad.data).all()))), None)
            if not math.isfinite(value) or bad is not None:
                raise self._error((epoch, step), value, bad, self.last_good)
            self.optimizer.step()
            self.last_good = (epoch, step)
        else:
            self._step_on_device(loss, (epoch, step))

    def _step_on_device(self, loss: Tensor, where: tuple[int, int]) -> None:
        xp = self.xp
        if self.healthy is None:  # the device's own values, made once: no copy from the host per step
            self.healthy, self.true = xp.asarray(True), xp.asarray(True)
            self.device_count, self.first_bad = xp.zeros((), dtype=xp.float64), xp.zeros(3, dtype=xp.float64)
        self.count += 1
        self.device_count += 1
        self.places[self.count] = where
        finite = xp.stack([xp.isfinite(loss.data).all()] + [
            xp.isfinite(p.grad.data).all() if p.grad is not None else self.true for _, p in self.named])
        ok = finite.all()
        # [the step's count, its loss, what was not finite: 0 the loss, i the i-th parameter's gradient]
        this = xp.stack([self.device_count, loss.data.astype(xp.float64).reshape(()),
                         finite.astype(xp.int32).argmin().astype(xp.float64)])
        self.first_bad = xp.where(self.healthy & ~ok, this, self.first_bad)
        self.healthy = self.healthy & ok
        self.scalars[self.count] = self._host_state()
        arrays = [p.data for _, p in self.named] + self._state_arrays()
        before = [a.copy() for a in arrays]
        self.optimizer.step()
        undo = ~self.healthy
        for a, b in zip(arrays, before):
            xp.copyto(a, b, where=undo)  # as if the step never happened, once a step was not finite

    def _state_arrays(self) -> list:
        return [v for state in self.optimizer.state.values() for v in state.values()
                if self.backend.is_array(v) and v.ndim]

    def _host_state(self) -> dict:
        """Per parameter, its optimizer state's keys and the entries kept on the host (step counts)."""
        return {p: ({k: v for k, v in state.items() if not self.backend.is_array(v)}, set(state))
                for p, state in self.optimizer.state.items()}

    # --- the device path's report ----------------------------------------------------------
    def report(self) -> None:
        """Raise if a step since the last report was not finite; fit calls it where it reads anyway."""
        if self.healthy is None:
            return
        if bool(self.read(self.healthy)):
            if self.places:
                self.last_good = self.places[self.count]
            self.places, self.scalars = {}, {}
            return
        count, value, what = self.read(self.first_bad).tolist()
        count = int(count)
        self._put_back_host_state(self.scalars[count])
        previous = self.places.get(count - 1, self.last_good)
        bad = None if what == 0 else self.named[int(what) - 1][0]
        raise self._error(self.places[count], value, bad, previous)

    def _put_back_host_state(self, saved: dict) -> None:
        """The optimizer's state as it was before the first bad step: its step counts, and no
        entry made since (a first step that was not finite leaves no state at all)."""
        state = self.optimizer.state
        for p in [p for p in state if p not in saved]:
            del state[p]
        for p, (scalars, keys) in saved.items():
            for key in [k for k in state[p] if k not in keys]:
                del state[p][key]
            state[p].update(scalars)

    # --- the message -------------------------------------------------------------------------
    def _error(self, where: tuple[int, int], loss: float, bad: str | None,
               previous: tuple[int, int] | None) -> NonFiniteError:
        epoch, step = where
        if not math.isfinite(loss):
            what = f"the loss is {loss:g}"
        else:
            what = f"the loss is {loss:.4g} but the gradient of {bad} holds NaN or Inf"
            if self.processes > 1:
                what += " (another process's loss may be the one that is not finite)"
        kept = "the weights it had before fit" if previous is None else \
            f"the weights of its last good step (epoch {previous[0] + 1}, step {previous[1] + 1})"
        lr = getattr(self.optimizer, "lr", None)
        now = f" (it is {lr:g})" if isinstance(lr, (int, float)) else ""
        return NonFiniteError(
            f"{self.op}: stopped at epoch {epoch + 1}, step {step + 1}, before its update: {what}. "
            f"The model keeps {kept}. To find the cause: lower the learning rate{now}, scale the inputs "
            "(e.g. to [0, 1]), or run a step under `with ag.detect_anomaly():` to see the first op that "
            "makes NaN or Inf.")
