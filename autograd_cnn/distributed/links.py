"""What carries the bytes between processes: MPI (mpi4py) for host arrays, NCCL for CuPy arrays.

Each link starts collectives without waiting for them and hands back something to ``test``
until it is done; ``world.py`` does the waiting, with a deadline, and turns the links' own
errors into ``DistributedError``. A link imports mpi4py or CuPy when it is made: only in a job
of several processes, or when ``dist.init`` names one.
"""
from __future__ import annotations

import atexit
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DistributedError

MPI_INSTALL_HINT = "pip install 'autograd-cnn[mpi]' (mpi4py and MPICH)"


class MpiLink:
    """MPI_COMM_WORLD through mpi4py: who this process is, and non-blocking collectives on host arrays."""

    name = "mpi"

    def __init__(self) -> None:
        try:
            import mpi4py
        except ImportError:
            raise DistributedError(f"mpi4py is not installed, so the processes cannot talk: {MPI_INSTALL_HINT}; "
                                   "or run under plain python, as one process") from None
        # MPI_Finalize waits for every peer, so after a lost peer it would wait forever: this
        # link finalizes at exit itself, and only while the job is whole.
        self.owns_finalize = "mpi4py.MPI" not in sys.modules
        if self.owns_finalize:
            mpi4py.rc.finalize = False
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the processes on this machine
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        self.whole = True  # False once a peer is lost (a timeout): then never finalize
        atexit.register(self.close)

    def all_reduce(self, array: np.ndarray, op: str) -> Any:
        return self.comm.Iallreduce(self.MPI.IN_PLACE, array, self.ops[op])

    def broadcast(self, array: np.ndarray, src: int) -> Any:
        return self.comm.Ibcast(array, root=src)

    def all_gather(self, array: np.ndarray, out: np.ndarray) -> Any:
        return self.comm.Iallgather(array, out)

    def barrier(self) -> Any:
        return self.comm.Ibarrier()

    @staticmethod
    def test(request: Any) -> bool:
        """Move the collective on (MPI progresses inside its calls) and say whether it is done."""
        return request.Test()

    def abandon(self) -> None:
        self.whole = False

    def close(self) -> None:
        """At exit: finalize MPI while the job is whole. After a lost peer, or an error that ends
        this process while the others may wait for it, end the whole job (MPI_Abort) instead, as
        ``python -m mpi4py`` does: no process is left waiting for one that is gone."""
        if self.MPI.Is_finalized():
            return
        if not self.whole or getattr(sys, "last_value", None) is not None:
            sys.stderr.flush()
            self.comm.Abort(1)
        elif self.owns_finalize:
            self.MPI.Finalize()

    def version_line(self) -> str:
        """The MPI library's own name and version (its first line)."""
        return self.MPI.Get_library_version().strip().splitlines()[0]


class NcclLink:
    """NCCL on CuPy arrays, on a CUDA stream of its own. NCCL's unique id is made on rank 0 and
    sent to the others by ``share`` (an MPI broadcast)."""

    name = "nccl"

    def __init__(self, rank: int, size: int, share: Callable[[np.ndarray], None]) -> None:
        import cupy
        from cupy.cuda import nccl

        self.cupy, self.nccl = cupy, nccl
        uid = np.array(nccl.get_unique_id() if rank == 0 else [0] * 128, dtype=np.int64)
        share(uid)
        self.comm = nccl.NcclCommunicator(size, tuple(int(v) for v in uid), rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
        self.dtypes = {np.dtype(k): v for k, v in (
            ("float16", nccl.NCCL_FLOAT16), ("float32", nccl.NCCL_FLOAT32), ("float64", nccl.NCCL_FLOAT64),
            ("int8", nccl.NCCL_INT8), ("uint8", nccl.NCCL_UINT8), ("int32", nccl.NCCL_INT32),
            ("int64", nccl.NCCL_INT64))}

    def _dtype(self, array: Any) -> int:
        code = self.dtypes.get(array.dtype)
        if code is None:
            raise DistributedError(f"NCCL carries {', '.join(map(str, self.dtypes))}, not {array.dtype}")
        return code

    def _enqueue(self, launch: Callable[[int], None]) -> Any:
        """Run ``launch(stream)`` on this link's stream once the current stream's work is done
        (it writes the arrays); return an event that is done when the collective is."""
        cuda = self.cupy.cuda
        written = cuda.Event(disable_timing=True)
        written.record(cuda.get_current_stream())
        self.stream.wait_event(written)
        launch(self.stream.ptr)
        done = cuda.Event(disable_timing=True)
        done.record(self.stream)
        return done

    def all_reduce(self, array: Any, op: str) -> Any:
        ptr, dtype = array.data.ptr, self._dtype(array)
        return self._enqueue(lambda s: self.comm.allReduce(ptr, ptr, array.size, dtype, self.ops[op], s))

    def broadcast(self, array: Any, src: int) -> Any:
        dtype = self._dtype(array)
        return self._enqueue(lambda s: self.comm.bcast(array.data.ptr, array.size, dtype, src, s))

    def all_gather(self, array: Any, out: Any) -> Any:
        dtype = self._dtype(array)
        return self._enqueue(lambda s: self.comm.allGather(array.data.ptr, out.data.ptr, array.size, dtype, s))

    def test(self, done: Any) -> bool:
        self.comm.check_async_error()  # a peer's failure shows here, while our event never completes
        return done.done

    def abandon(self) -> None:
        """Free the GPU from collectives that will never complete (a lost peer)."""
        self.comm.abort()


def nccl_status() -> tuple[bool, str]:
    """(True, "NCCL 2.x.y") where CuPy, a GPU and CuPy's NCCL are usable, else (False, why not)."""
    from ..backends import cupy_usable

    ok, why = cupy_usable()
    if not ok:
        return False, f"CuPy is not usable ({why})"
    try:
        from cupy.cuda import nccl
    except ImportError as err:
        return False, f"this CuPy has no NCCL ({err}); install a CuPy wheel built with NCCL"
    version = nccl.get_version()  # 21903 is 2.19.3
    return True, f"NCCL {version // 10000}.{version // 100 % 100}.{version % 100}"
