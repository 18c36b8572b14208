"""The ``F.*`` names users call: ``import autograd_cnn.functional as F``.

Each ops module lists its public wrappers in ``__all__``; this module re-exports them all,
so a new wrapper in an ops module is an ``F.`` name with no edit here.
"""
from __future__ import annotations

from .ops.activation import *  # noqa: F403
from .ops.activation import __all__ as _activation
from .ops.conv import *  # noqa: F403
from .ops.conv import __all__ as _conv
from .ops.elementwise import *  # noqa: F403
from .ops.elementwise import __all__ as _elementwise
from .ops.loss import *  # noqa: F403
from .ops.loss import __all__ as _loss
from .ops.matmul import *  # noqa: F403
from .ops.matmul import __all__ as _matmul
from .ops.norm import *  # noqa: F403
from .ops.norm import __all__ as _norm
from .ops.pool import *  # noqa: F403
from .ops.pool import __all__ as _pool
from .ops.reduce import *  # noqa: F403
from .ops.reduce import __all__ as _reduce
from .ops.shape import *  # noqa: F403
from .ops.shape import __all__ as _shape

__all__ = [*_activation, *_conv, *_elementwise, *_loss, *_matmul, *_norm, *_pool, *_reduce, *_shape]
