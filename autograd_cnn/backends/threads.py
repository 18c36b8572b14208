"""Worker threads for the numba backend's kernels: a batch split into parts, every core on every kernel.

NumPy runs each array operation on one core, and OpenBLAS starts its own threads only inside a
matrix product; after each product they spin for a while, waiting for more, on the cores the
next operation would use. So the numba backend splits a kernel's batch into parts and runs
them on its own threads, the caller among them, with BLAS held to one thread per call while
they run: elementwise passes use every core too, and no thread spins between kernels (the
NumPy backend, the plain reference, uses none of this: its kernels run on the calling thread). Each
thread takes the next part as it finishes one, so a core that another program holds for a
while slows a kernel by a part, not by half. A product long in arithmetic is the exception: it
runs on BLAS's own threads, which the next kernel in parts ends (``BlasThreads.stop``).
"""
from __future__ import annotations

import ctypes
import os
import queue
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ArgumentError

#: The number of threads the numba backend's kernels may use (default: the cores this process may run on);
#: ``1`` runs each kernel on the calling thread and leaves BLAS's own threads as they are.
THREADS_ENV_VAR = "AUTOGRAD_CNN_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_count(quiet: bool = False) -> int:
    """AUTOGRAD_CNN_THREADS where set, else the usable cores. A value that is not a whole number of
    at least 1 is an ArgumentError naming it; one above the usable cores is cut to them, with a
    warning (more threads than cores would only take turns on them). ``quiet``: a bad value counts
    as unset and the cut is silent (for a backend made at import: the registry checks the variable
    once, and raises or warns there)."""
    value = os.environ.get(THREADS_ENV_VAR, "").strip()
    cores = usable_cores()
    if not value:
        return cores
    if not (value.isascii() and value.isdigit()) or int(value) < 1:  # "abc", "0", "-1", "1.5"
        if quiet:
            return cores
        raise ArgumentError(f"{THREADS_ENV_VAR}={value!r}: give the number of threads the CPU kernels may use, "
                            f"a whole number of at least 1 (this process may run on {cores} cores), or unset "
                            "it to use them all")
    if int(value) > cores:
        if quiet:
            return cores
        warnings.warn(f"{THREADS_ENV_VAR}={value} is more than the {cores} cores this process may run on; "
                      f"the CPU kernels use {cores} threads", stacklevel=2)
        return cores
    return int(value)


class BlasThreads:
    """OpenBLAS's own thread count, read and set through its C functions."""

    # The names the C functions go by in NumPy's wheels (scipy-openblas, 64-bit integers)
    # and in a system OpenBLAS.
    NAMES = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
             ("openblas_get_num_threads", "openblas_set_num_threads"))

    def __init__(self, get: Any, set_: Any, shutdown: Any = None) -> None:
        self.get, self._set = get, set_
        self._shutdown = shutdown

    def set(self, count: int) -> None:
        self._set(count)

    @property
    def can_stop(self) -> bool:
        """Whether ``stop`` can end BLAS's threads (OpenBLAS exports the function that does)."""
        return self._shutdown is not None

    def stop(self) -> None:
        """End BLAS's threads, which otherwise spin for a while after each threaded product.
        BLAS starts them again (about 0.1 ms) at its next threaded product, or as soon as its
        count is set, and new threads spin too (see ``NumbaBackend.run_parts``)."""
        self._shutdown()

    @classmethod
    def find(cls) -> BlasThreads | None:
        """The OpenBLAS that NumPy loaded, or None (another BLAS, or a system without /proc)."""
        try:
            with open("/proc/self/maps") as maps:
                paths = sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1]})
        except OSError:
            return None
        for path in paths:
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            for get_name, set_name in cls.NAMES:
                get, set_ = getattr(library, get_name, None), getattr(library, set_name, None)
                if get is not None and set_ is not None:
                    get.restype, set_.argtypes = ctypes.c_int, (ctypes.c_int,)
                    # OpenBLAS's own fork handler calls this one: it joins BLAS's threads.
                    shutdown = getattr(library, "blas_thread_shutdown_", None)
                    if shutdown is not None:
                        shutdown.restype, shutdown.argtypes = ctypes.c_int, ()
                    return cls(get, set_, shutdown)
        return None


class _Job:
    """One call of ``Workers.run``: the parts, the next one to take, the results, and how many are
    being computed. The caller waits only for parts that a helper has taken: a helper that wakes
    after the last part was taken finds nothing to do, and nobody waits for it."""

    def __init__(self, fn: Callable[[Any], Any], parts: Sequence[Any]) -> None:
        self.fn, self.parts = fn, parts
        self.results: list = [None] * len(parts)
        self.next = 0
        self.running = 0  # parts taken and not finished
        self.idle = threading.Condition()  # notified when running drops to 0
        self.error: BaseException | None = None

    def work(self) -> None:
        """Take parts until none is left (or one has failed)."""
        while True:
            with self.idle:
                if self.error is not None or self.next >= len(self.parts):
                    return
                index, self.next, self.running = self.next, self.next + 1, self.running + 1
            try:
                result = self.fn(self.parts[index])
            except BaseException as err:  # handed to the caller, which raises it
                result, self.error = None, err
            with self.idle:
                self.results[index], self.running = result, self.running - 1
                if self.running == 0:
                    self.idle.notify_all()

    def wait(self) -> None:
        """Until no part is being computed (the caller has taken every part left, or stopped)."""
        with self.idle:
            while self.running:
                self.idle.wait()
            self.fn, self.parts = None, ()  # a helper that wakes late finds no part, holds no array


class Workers:
    """``count - 1`` helper threads and the caller: ``run(fn, parts)`` calls ``fn`` on each part.

    The helpers start on first use (again in a forked child, which has none). A call made from
    inside a part runs its own parts on its own thread.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._pid: int | None = None  # the process the helpers were started in
        self._inside = threading.local()  # .busy: this thread is running parts

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid, self._tasks = os.getpid(), queue.SimpleQueue()
        for _ in range(self.count - 1):
            threading.Thread(target=self._serve, args=(self._tasks,), daemon=True,
                             name="autograd_cnn worker").start()

    def _serve(self, tasks: queue.SimpleQueue) -> None:
        self._inside.busy = True
        while True:
            tasks.get().work()

    def run(self, fn: Callable[[Any], Any], parts: Sequence[Any], count: int | None = None) -> list:
        """``[fn(part) for part in parts]``, computed on up to ``count`` threads (default: all)."""
        helpers = min(self.count if count is None else count, len(parts)) - 1
        if helpers < 1 or getattr(self._inside, "busy", False):
            return [fn(part) for part in parts]
        self._start()
        job = _Job(fn, parts)
        for _ in range(helpers):
            self._tasks.put(job)
        self._inside.busy = True
        try:
            job.work()
        finally:
            self._inside.busy = False
            job.wait()  # the parts that helpers took are finished before the caller goes on
        if job.error is not None:
            raise job.error
        return job.results
