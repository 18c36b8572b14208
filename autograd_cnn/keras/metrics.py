"""Keras's metrics, as objects that `compile(metrics=[...])` takes."""
from __future__ import annotations

__all__: list[str] = []
