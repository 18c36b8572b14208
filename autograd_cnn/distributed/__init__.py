"""Many processes: ``from autograd_cnn import distributed as dist``.

    mpiexec -n 4 python train.py            # four processes on this machine
    mpiexec -f hosts -n 8 python train.py   # eight, across the machines of a host file

Each process runs the same script. ``model.fit`` shards the data, averages gradients, loss
and metrics, and prints and saves from rank 0 only; in a loop of your own, wrap the model in
``DataParallel`` and give ``DataLoader`` ``shard=True``. Under plain ``python`` the world is
one process and everything here costs nothing (mpi4py is not even imported).

Files: ``world.py`` (who is who, the collectives, the deadline), ``links.py`` (MPI and NCCL),
``sharding.py`` (which samples each process takes), ``buckets.py`` (gradients averaged during
backward), ``parallel.py`` (``DataParallel``).
"""
from __future__ import annotations

from ..errors import DistributedError
from .buckets import GradientBuckets
from .parallel import DataParallel
from .world import all_gather, all_reduce, barrier, broadcast, init, is_main, local_rank, rank, world_size

__all__ = ["DataParallel", "DistributedError", "GradientBuckets", "all_gather", "all_reduce", "barrier",
           "broadcast", "init", "is_main", "local_rank", "rank", "world_size"]
