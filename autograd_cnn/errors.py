"""The error types autograd_cnn raises; each message names the op, the shapes and what to do."""
from __future__ import annotations


class AutogradError(Exception):
    """Base class of every error the engine raises on purpose."""


class ShapeError(AutogradError, ValueError):
    """Inputs whose shapes an op cannot accept."""


class BackendError(AutogradError, RuntimeError):
    """An unknown, missing or mismatched array backend."""


class GraphError(AutogradError, RuntimeError):
    """A misuse of the graph: backward twice, backward on a non-scalar, and the like."""


class AnomalyError(AutogradError, RuntimeError):
    """``detect_anomaly``: an op made NaN or Inf, or a saved value changed behind the library's back."""


class DistributedError(AutogradError, RuntimeError):
    """A collective between processes that failed or timed out (a dead or stuck peer, tensors
    that differ between processes); the message names the call, the rank and the shapes."""


class ArgumentError(AutogradError, ValueError):
    """An argument whose value a function cannot take: a kernel size of 0, a negative learning rate."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of a type a function cannot take: a float channel count, text where numbers go.

    Also an ArgumentError (and so a ValueError), as NumPy's AxisError is both: ``except
    ArgumentError`` catches every bad argument, ``except TypeError`` the wrong types alone."""


class UsageError(AutogradError, RuntimeError):
    """A call made when it cannot run: ``evaluate`` before ``compile``, a loss that reads a layer the
    forward pass never called. The message says which call to make first."""


class CheckpointError(AutogradError, OSError, ValueError):
    """A checkpoint that cannot be written or read, or a state dict that does not fit the model.

    An OSError (the file system failed: a full disk, a missing folder) and a ValueError (the
    contents are wrong: not a checkpoint, truncated, a missing key), so either ``except`` works."""


class NonFiniteError(AutogradError, FloatingPointError):
    """``fit`` stopped before a step whose loss or gradients held NaN or Inf could change the
    weights; the message names the epoch, the step and the value, and what to try."""


def shape_str(shape: tuple) -> str:
    """(2, 3) rather than Python's (2, 3) with a trailing comma for 1-tuples."""
    return "(" + ", ".join(str(s) for s in shape) + ")"
