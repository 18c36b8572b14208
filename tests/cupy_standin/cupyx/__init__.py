"""The part of cupyx that the CuPy backend uses, on NumPy (see ``cupy`` beside this)."""
import numpy as np


def scatter_add(out: np.ndarray, index: object, values: np.ndarray) -> None:
    np.add.at(out, index, values)
