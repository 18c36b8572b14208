"""Keras's utilities: `to_categorical`, `plot_model`."""
from __future__ import annotations

__all__: list[str] = []
