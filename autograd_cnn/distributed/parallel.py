"""``DataParallel``: one model trained by every process of the job at once, each on its own batches."""
from __future__ import annotations

from typing import Any

from ..errors import ArgumentTypeError
from ..nn.module import Module
from .buckets import GradientBuckets, broadcast_state


class DataParallel(Module):
    """Wrap ``module`` so that every process trains the same model, as PyTorch's
    DistributedDataParallel does.

    When made, it gives every process rank 0's parameters and buffers. During each
    ``backward()`` it averages the gradients over the processes in buckets of about
    ``bucket_mb`` megabytes, each all-reduce started as soon as its gradients are ready;
    all are done when ``backward()`` returns, so the optimizer's step is the same on every
    process and the parameters stay equal, bit for bit. Buffers (batch norm's running
    statistics) stay each process's own.

    ``.module`` is the wrapped model; ``state_dict()`` and ``load_state_dict()`` use its names.
    In a world of one process it only calls the model.
    """

    def __init__(self, module: Module, bucket_mb: float = 25.0) -> None:
        if not isinstance(module, Module):
            raise ArgumentTypeError(f"DataParallel: expected an nn.Module to wrap, got {type(module).__name__}")
        named = _named_state(module)  # while it is its own root: the names are the model's own
        super().__init__()
        self.module = module
        broadcast_state(named, "DataParallel")
        self.buckets = GradientBuckets(module.parameters(), bucket_mb, "DataParallel")
        self.bucket_mb = bucket_mb

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict, strict: bool = True) -> Any:
        return self.module.load_state_dict(state, strict)

    def extra_repr(self) -> str:
        return f"bucket_mb={self.bucket_mb:g}"


def _named_state(module: Module) -> dict:
    named = dict(module.named_parameters())
    named.update(module.named_buffers())
    return named
