"""The Keras 3 API that the lectures write, on this package's engine.

    from autograd_cnn import keras            # was: from tensorflow import keras
    from autograd_cnn.keras import layers     # was: from tensorflow.keras import layers

A thin skin over ``nn``, the one ``Trainer`` and the engine: it owns Keras's names, defaults and
weight layouts, never a second training loop or a second kernel.
"""
from __future__ import annotations

from . import (
           activations,
           backend,
           callbacks,
           datasets,
           initializers,
           layers,
           losses,
           metrics,
           models,
           optimizers,
           utils,
)
from .graph import KerasTensor
from .layers import Input, Layer
from .models import Model, Sequential

__all__ = ["Input", "KerasTensor", "Layer", "Model", "Sequential", "activations", "backend", "callbacks",
           "datasets", "initializers", "layers", "losses", "metrics", "models", "optimizers", "utils"]
