"""Keras's optimizers, with Keras's argument names, defaults and update formulas."""
from __future__ import annotations

__all__: list[str] = []
