"""Keras's models: `Input`, the functional `Model`, `Sequential`, and `load_model`."""
from __future__ import annotations

__all__: list[str] = []
