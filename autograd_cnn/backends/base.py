"""The Backend interface: one array library's module ``xp``, host transfers and random numbers.

No kernels here: each family of them is a class of its own file (``convolution.py``,
``pooling.py``, ...), and ``xp_backend.py`` says how they come together.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class Backend:
    """One array library: its module ``xp``, host transfers, random numbers, device facts."""

    name: str = "?"
    xp: Any = None
    #: True where every array operation is a kernel launch that costs more than its memory
    #: traffic (a GPU): the conv kernels then take fewer, larger steps. False (the CPU): they
    #: take more, smaller steps that stay in cache or copy less.
    launch_bound: bool = False
    #: The threads a kernel's parts may run on (``run_parts``); 1 runs them in turn on the caller.
    threads: int = 1
    #: About the most bytes one part of a batch touches (``batch_parts``): a kernel's passes over a
    #: part then find it in the core's cache.
    part_bytes: int = 4 << 20
    #: A kernel that touches fewer bytes than this in all runs as one part: handing parts to
    #: threads would cost more than it saves.
    min_parallel_bytes: int = 1 << 20

    def __init__(self) -> None:
        self._rng = None

    @classmethod
    def instance(cls) -> Backend:
        """The one instance of this backend class, made on the first call; the registry hands it out."""
        if "_instance" not in cls.__dict__:  # each class its own, never a parent's
            cls._instance = cls()
        return cls._instance

    def __repr__(self) -> str:
        return f"<autograd_cnn backend {self.name!r}>"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        # ag.get_backend() == "numpy" reads naturally in user code and tests.
        if isinstance(other, str):
            return other == self.name
        return other is self

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self) -> tuple:
        # One instance per backend: copy.deepcopy and pickle of tensors and models resolve
        # to the class's instance, so ops never see "numpy and numpy" as two backends.
        return (type(self).instance, ())

    def mixed_with(self, other: Backend) -> Backend | None:
        """The backend an op whose inputs live on this backend and on ``other`` runs on, or None
        when they cannot mix (an op then refuses them: nothing is copied behind the user's back)."""
        return None

    # --- arrays -----------------------------------------------------------
    def is_array(self, obj: Any) -> bool:
        """True when ``obj`` is this backend's array type."""
        return isinstance(obj, self.xp.ndarray)

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Data (host or this backend's) as this backend's array."""
        return self.xp.asarray(data, dtype=dtype)

    def scalar(self, value: bool | int | float, dtype: Any = None) -> Any:
        """A 0-d array holding a Python number, for ``x * 0.5`` and the like."""
        return self.xp.asarray(value, dtype=dtype)

    def to_host(self, array: Any) -> Any:
        """A NumPy array with the same values."""
        raise NotImplementedError

    def from_host(self, array: Any) -> Any:
        """This backend's array from a NumPy array."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued work (a no-op on the CPU); benchmarks call it before reading a clock."""

    # --- a batch's work in parts --------------------------------------------
    def batch_parts(self, n: int, item_bytes: int) -> list[slice]:
        """Items 0..n (a batch's images) as slices for ``run_parts``: parts of about ``part_bytes``
        when each item touches ``item_bytes``, a multiple of ``threads`` of them when the work is
        large enough to share; one part on a launch-bound backend (a GPU takes a batch at once)."""
        total = n * item_bytes
        if self.launch_bound or n <= 1 or total < self.min_parallel_bytes:
            return [slice(0, n)]
        count = max(-(-total // self.part_bytes), self.threads)
        count = min(-(-count // self.threads) * self.threads, n)  # whole rounds: no thread idles at the end
        size = -(-n // count)
        return [slice(start, min(start + size, n)) for start in range(0, n, size)]

    def run_parts(self, fn: Callable[[Any], Any], parts: Sequence[Any]) -> list:
        """``[fn(part) for part in parts]``; a backend with worker threads runs the parts on them
        (each ``fn`` writes its own part of the output, or returns its share to be summed)."""
        return [fn(part) for part in parts]

    # --- random numbers ---------------------------------------------------
    @property
    def rng(self) -> Any:
        """The backend's random generator, seeded by ``ag.manual_seed``."""
        if self._rng is None:
            self._rng = self.xp.random.default_rng()
        return self._rng

    @property
    def rng_started(self) -> bool:
        """True once the generator exists: seeded, or drawn from."""
        return self._rng is not None

    def seed(self, seed: int) -> None:
        """Start the random generator afresh from ``seed``."""
        self._rng = self.xp.random.default_rng(seed)

    # --- device description (for `autograd-cnn info`) ---------------------
    def describe(self) -> dict:
        """Name, library version and device, for ``autograd-cnn info``."""
        return {"backend": self.name}
