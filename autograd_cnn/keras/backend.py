"""The few ``keras.backend`` settings the lectures' scripts read: ``image_data_format()`` (as in
Keras's ``mnist_cnn.py``: ``if K.image_data_format() == "channels_first": ...``), ``epsilon()``,
``floatx()`` and ``clear_session()``."""
from __future__ import annotations

from .. import checks

_settings = {"image_data_format": "channels_last"}


def image_data_format() -> str:
    """The layers' default ``data_format``: "channels_last" unless set otherwise."""
    return _settings["image_data_format"]


def set_image_data_format(data_format: str) -> None:
    """Make ``data_format`` the default of the layers made from now on."""
    _settings["image_data_format"] = checks.choice("set_image_data_format", "data_format", data_format,
                                                   ("channels_last", "channels_first"))


def epsilon() -> float:
    """Keras's fuzz factor, 1e-7."""
    return 1e-7


def floatx() -> str:
    return "float32"


def clear_session() -> None:
    """Start the automatic layer names afresh (``dense``, ``dense_1``, ... again)."""
    from . import graph

    graph.reset_names()
