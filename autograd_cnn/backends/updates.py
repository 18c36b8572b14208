"""Optimizer update rules: every optimizer's arithmetic on its arrays, in place, in one file.

``optim.py`` keeps the bookkeeping (parameter groups, state, hyper-parameters) and calls these
by name. Each rule here is written once against ``self.xp``; the CuPy backend fuses SGD with
momentum, RMSprop and Adam into one kernel each and falls back here for the rest.
"""
from __future__ import annotations

from typing import Any

from .base import Backend


class UpdateKernels(Backend):
    """The update rules of optim's SGD, RMSprop, Adam, AdamW and Adadelta (equal to PyTorch's), and
    those of keras.optimizers where Keras 3's formulas differ (SGD's velocity, RMSprop, Adagrad).

    Each rule makes several passes over its arrays. A large parameter is updated a part at a
    time (``in_parts``), so the passes over a part find it in the core's cache: 30% off an
    800-400-10 MLP's RMSprop, Adam or SGD step. The parts run in turn on the calling thread:
    on the worker threads they would end BLAS's threads after each product on them (``run_parts``),
    and restarting those cost an MLP's training step more than the update gained.
    """

    def in_parts(self, rule: Any, *arrays: Any) -> None:
        """``rule(*arrays)``, which updates its arrays in place element by element, run on parts
        of the flattened arrays in turn. Arrays of one shape, C-contiguous (None passes as None);
        other arrays, small ones (under half of ``part_bytes``) and a launch-bound backend's are
        updated whole."""
        first = arrays[0]
        present = [a for a in arrays if a is not None]
        element_bytes = sum(a.itemsize for a in present)
        # Under half of part_bytes the arrays fit a core's cache whole: parts would only cost.
        if self.launch_bound or first.size * element_bytes < self.part_bytes // 2 or \
                not all(a.flags.c_contiguous and a.shape == first.shape for a in present):
            rule(*arrays)
            return
        flat = [None if a is None else a.reshape(-1) for a in arrays]  # views: the rule writes into the arrays
        # Each element counted four times: parts of about a quarter of part_bytes of the arrays,
        # which stay in the core's cache through the rule's passes.
        parts = self.batch_parts(first.size, 4 * element_bytes)
        for part in parts:
            rule(*[None if a is None else a[part] for a in flat])

    def weight_decay_grad(self, p: Any, g: Any, weight_decay: float) -> Any:
        """g + weight_decay p: L2 weight decay folded into the gradient (a new array: g is the caller's)."""
        return g + weight_decay * p

    def decoupled_weight_decay(self, p: Any, lr: float, weight_decay: float) -> None:
        """p *= 1 - lr weight_decay: AdamW's decay, applied to the weights before the Adam step."""
        p *= 1 - lr * weight_decay

    def sgd_update(self, p: Any, g: Any, lr: float) -> None:
        """p -= lr g: SGD without momentum."""
        def rule(p: Any, g: Any) -> None:
            p -= lr * g
        self.in_parts(rule, p, g)

    def sgd_momentum_start(self, p: Any, g: Any, lr: float, momentum: float, nesterov: bool) -> Any:
        """The first step with momentum: buf starts as a copy of g, as PyTorch's (no dampening on it);
        p -= lr (g + momentum buf if nesterov else buf). Returns buf, the optimizer's new state."""
        buf = g.copy()
        p -= lr * (g + momentum * buf if nesterov else buf)
        return buf

    def sgd_momentum_update(self, p: Any, g: Any, buf: Any, lr: float, momentum: float, dampening: float,
                            nesterov: bool) -> None:
        """buf = momentum buf + (1 - dampening) g; p -= lr (g + momentum buf if nesterov else buf)."""
        def rule(p: Any, g: Any, buf: Any) -> None:
            buf *= momentum
            buf += (1 - dampening) * g
            p -= lr * (g + momentum * buf if nesterov else buf)
        self.in_parts(rule, p, g, buf)

    def rmsprop_update(self, p: Any, g: Any, square_avg: Any, buf: Any, lr: float, alpha: float,
                       eps: float, momentum: float) -> None:
        """square_avg = alpha square_avg + (1 - alpha) g^2; step = g / (sqrt(square_avg) + eps);
        with momentum, buf = momentum buf + step and the step is buf; p -= lr step."""
        def rule(p: Any, g: Any, square_avg: Any, buf: Any) -> None:
            square_avg *= alpha
            square_avg += (1 - alpha) * g * g
            step = self.xp.sqrt(square_avg)
            step += eps
            self.xp.divide(g, step, out=step)
            if buf is not None:
                buf *= momentum
                buf += step
                step = buf
            p -= lr * step
        self.in_parts(rule, p, g, square_avg, buf)

    def adam_update(self, p: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, betas: tuple, step_size: float,
                    bias2_sqrt: float, eps: float) -> None:
        """Adam's moving averages of g and g^2, then p -= step_size m / (sqrt(v) / bias2_sqrt + eps)
        (step_size = lr / (1 - beta1^t), bias2_sqrt = sqrt(1 - beta2^t): the bias corrections)."""
        b1, b2 = betas

        def rule(p: Any, g: Any, exp_avg: Any, exp_avg_sq: Any) -> None:
            exp_avg *= b1
            exp_avg += (1 - b1) * g
            exp_avg_sq *= b2
            exp_avg_sq += (1 - b2) * g * g
            denom = self.xp.sqrt(exp_avg_sq)
            denom /= bias2_sqrt
            denom += eps
            self.xp.divide(exp_avg, denom, out=denom)  # reuse the buffer for the update direction
            denom *= step_size
            p -= denom
        self.in_parts(rule, p, g, exp_avg, exp_avg_sq)

    def adadelta_update(self, p: Any, g: Any, square_avg: Any, acc_delta: Any, lr: float, rho: float,
                        eps: float) -> None:
        """v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g; u = rho u + (1 - rho) d^2;
        p -= lr d (v is square_avg, u is acc_delta)."""
        def rule(p: Any, g: Any, square_avg: Any, acc_delta: Any) -> None:
            square_avg *= rho
            square_avg += (1 - rho) * g * g
            delta = self.xp.sqrt(acc_delta + eps)
            delta /= self.xp.sqrt(square_avg + eps)
            delta *= g
            acc_delta *= rho
            acc_delta += (1 - rho) * delta * delta
            p -= lr * delta
        self.in_parts(rule, p, g, square_avg, acc_delta)

    # --- Keras 3's formulas (keras.optimizers), where they differ from PyTorch's ------------------
    def keras_sgd_momentum_update(self, p: Any, g: Any, m: Any, lr: float, momentum: float,
                                  nesterov: bool) -> None:
        """Keras's SGD with momentum: m = momentum m - lr g; p += momentum m - lr g if nesterov else m
        (the velocity holds the learning rate, so a changed rate acts from the next step on)."""
        def rule(p: Any, g: Any, m: Any) -> None:
            m *= momentum
            m -= lr * g
            if nesterov:
                p += momentum * m - lr * g
            else:
                p += m
        self.in_parts(rule, p, g, m)

    def keras_rmsprop_update(self, p: Any, g: Any, velocity: Any, average_grad: Any, buf: Any, lr: float,
                             rho: float, epsilon: float, momentum: float) -> None:
        """Keras's RMSprop: velocity = rho velocity + (1 - rho) g^2; the increment is
        lr g / sqrt(velocity + epsilon), epsilon inside the root (PyTorch adds it outside);
        centered (average_grad given): average_grad = rho average_grad + (1 - rho) g and
        velocity - average_grad^2 under the root; with momentum, buf = momentum buf + increment
        and p -= buf, else p -= increment."""
        def rule(p: Any, g: Any, velocity: Any, average_grad: Any, buf: Any) -> None:
            velocity *= rho
            velocity += (1 - rho) * g * g
            if average_grad is None:
                step = velocity + epsilon
            else:
                average_grad *= rho
                average_grad += (1 - rho) * g
                step = velocity - average_grad * average_grad
                step += epsilon
            self.xp.sqrt(step, out=step)
            self.xp.divide(g, step, out=step)
            step *= lr
            if buf is not None:
                buf *= momentum
                buf += step
                step = buf
            p -= step
        self.in_parts(rule, p, g, velocity, average_grad, buf)

    def adagrad_update(self, p: Any, g: Any, accumulator: Any, lr: float, epsilon: float) -> None:
        """Keras's Adagrad: accumulator += g^2; p -= lr g / sqrt(accumulator + epsilon)."""
        def rule(p: Any, g: Any, accumulator: Any) -> None:
            accumulator += g * g
            step = accumulator + epsilon
            self.xp.sqrt(step, out=step)
            self.xp.divide(g, step, out=step)
            step *= lr
            p -= step
        self.in_parts(rule, p, g, accumulator)
