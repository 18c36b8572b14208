"""Keras's callbacks: `EarlyStopping`, `ModelCheckpoint`, `History`."""
from __future__ import annotations

__all__: list[str] = []
