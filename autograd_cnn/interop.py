"""Weights from PyTorch: ``model.load_state_dict(interop.from_torch(torch_model.state_dict()))``.

Our names and layouts are PyTorch's, so a PyTorch model built from the same layers in the same
order (``nn.Sequential`` children "0", "1", ...; attributes named alike in a custom module) loads
as it is:

- ``Linear.weight`` is (out_features, in_features); ``Conv1d``/``Conv2d.weight`` is
  (out, in / groups, *kernel); ``ConvTranspose2d.weight`` is (in, out / groups, KH, KW);
- ``Flatten`` joins (C, H, W) in that order, as PyTorch's does;
- batch norms have ``weight``, ``bias``, ``running_mean`` and ``running_var``. PyTorch's also count
  their batches (``num_batches_tracked``, which only ``momentum=None`` reads); ours keep no count,
  and ``load_state_dict`` passes over that entry.

Arrays for tensors (``ag.from_dlpack``, ``np.asarray``) are in ``tensor.py``; the ONNX export in
``onnx.py``. PyTorch is never needed to import this module: ``from_torch`` imports it when called.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import ArgumentTypeError

__all__ = ["from_torch"]


def from_torch(state_dict: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
    """A PyTorch state dict (or a ``torch.nn.Module``) as NumPy arrays, for ``load_state_dict``.

    Tensors come to the host, detached (a CPU tensor's array shares its memory; ``load_state_dict``
    copies); bfloat16, which NumPy lacks, becomes float32 (``load_state_dict`` casts to each
    parameter's own dtype anyway). The names are kept as they are.
    """
    try:
        import torch
    except ImportError:
        raise ImportError("interop.from_torch needs PyTorch, which converts its own tensors: "
                          "pip install torch") from None
    if isinstance(state_dict, torch.nn.Module):
        state_dict = state_dict.state_dict()
    if not isinstance(state_dict, Mapping):
        raise ArgumentTypeError(f"from_torch: expected a state dict (a mapping of names to tensors) or a "
                                f"torch.nn.Module, got {type(state_dict).__name__}")
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ArgumentTypeError(f"from_torch: entry {name!r} is a {type(value).__name__}, not a tensor; "
                                    "drop it from the state dict (extra state has no place in a model here)")
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        arrays[name] = value.numpy()
    return arrays
