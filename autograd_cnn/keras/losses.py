"""Keras's losses, as functions and as classes."""
from __future__ import annotations

__all__: list[str] = []
