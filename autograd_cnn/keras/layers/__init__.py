"""Keras's layers: channels-last by default, sizes inferred from the first input, Keras's names."""
from __future__ import annotations

__all__: list[str] = []
