"""XpBackend: every generic kernel family on one Backend, the class NumPy and CuPy both extend.

How the backends are built. ``base.Backend`` is the interface (``xp``, host transfers,
random numbers). Each family of kernels is one class in a file named for it, a ``Backend``
subclass whose methods are written once against ``self.xp`` (NumPy's API, which CuPy
mirrors): ``ConvolutionKernels``, ``PoolingKernels``, ``LossKernels``, ``ActivationKernels``,
``IndexingKernels``, ``ProductKernels``, ``UpdateKernels``, ``NormalizationKernels`` (batch norm,
dropout). The families share no method names,
so the order below decides nothing, and ``XpBackend`` composes them once for both backends:

    NumbaBackend -> NumpyBackend -> XpBackend -> the family classes -> Backend
    CupyBackend  -> XpBackend -> the family classes -> Backend

``NumpyBackend`` adds only host transfers; ``NumbaBackend`` overrides exactly the kernels it
compiles (and runs a batch's parts on worker threads), ``CupyBackend`` exactly the kernels it
fuses into one CUDA launch; both call ``super()`` where they do not
compile or fuse. A kernel is found by name as any method is: on the backend's own class, else in the
family file that defines it. Mixins were chosen over modules of free functions so that
``ctx.backend.im2col(...)`` stays a method a backend can override, and over one large class
so that each file holds one family.
"""
from __future__ import annotations

from .activations import ActivationKernels
from .convolution import ConvolutionKernels
from .indexing import IndexingKernels
from .losses import LossKernels
from .normalization import NormalizationKernels
from .pooling import PoolingKernels
from .products import ProductKernels
from .updates import UpdateKernels


class XpBackend(ConvolutionKernels, PoolingKernels, LossKernels, ActivationKernels, IndexingKernels,
                ProductKernels, UpdateKernels, NormalizationKernels):
    """A Backend with every kernel in its generic ``xp`` form; subclasses set ``name`` and ``xp``."""
