"""Processes on one machine share its cores: under mpiexec every thread pool a process uses (BLAS,
the CPU kernels' workers, Numba's) gets its share, unless the user sized that pool."""
from __future__ import annotations

import json
import os
import sys

import pytest
from conftest import NUMBA_OK
from test_distributed import _env, mpiexec, needs_mpi

import autograd_cnn as ag
from autograd_cnn import backends
from autograd_cnn.backends.threads import THREADS_ENV_VAR, BlasThreads, usable_cores
from autograd_cnn.distributed import world

threadpoolctl = pytest.importorskip("threadpoolctl")
USER_VARIABLES = (*world.BLAS_THREADS_VARIABLES, THREADS_ENV_VAR, world.NUMBA_THREADS_VARIABLE)


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


@pytest.fixture
def unset(monkeypatch):
    """No user setting, and every pool put back as it was after the test."""
    for name in USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # recorded: what share_cores sets is undone too
    cpu = ag.get_backend("numba" if NUMBA_OK else "numpy")  # the worker threads are numba's
    monkeypatch.setattr(cpu, "threads", cpu.threads)
    if hasattr(cpu, "workers"):
        monkeypatch.setattr(cpu, "workers", cpu.workers)
    monkeypatch.setattr(backends, "_cpu_threads", backends._cpu_threads)  # for backends loaded later
    numba = sys.modules.get("numba")
    numba_threads = numba.get_num_threads() if numba is not None else None
    with threadpoolctl.threadpool_limits(limits=None):  # BLAS's counts restored on the way out
        yield cpu
    if numba is not None:
        numba.set_num_threads(numba_threads)


def test_one_process_changes_nothing(unset):
    before = _blas_threads()
    assert world.share_cores(1) == {}
    assert _blas_threads() == before and os.environ.get(world.NUMBA_THREADS_VARIABLE) is None


def test_every_pool_gets_its_share(unset):
    share = max(1, usable_cores() // 4)
    assert world.share_cores(4) == {"blas": share, "kernels": share, "numba": share}
    assert set(_blas_threads()) <= {share}
    assert unset.threads == (share if getattr(unset, "blas", None) is not None else 1)
    numba = sys.modules.get("numba")
    if numba is None:
        assert os.environ[world.NUMBA_THREADS_VARIABLE] == str(share)  # for when numba is imported
    else:
        assert numba.get_num_threads() == min(share, numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize("variable, pool", [("OMP_NUM_THREADS", "blas"), ("OPENBLAS_NUM_THREADS", "blas"),
                                            ("MKL_NUM_THREADS", "blas"), (THREADS_ENV_VAR, "kernels"),
                                            ("NUMBA_NUM_THREADS", "numba")])
def test_a_pool_the_user_sized_is_left_alone(unset, monkeypatch, variable, pool):
    monkeypatch.setenv(variable, "2")
    before = _blas_threads()
    sized = world.share_cores(4)
    assert pool not in sized and len(sized) == 2
    if pool == "blas":
        assert _blas_threads() == before
    if pool == "numba":
        assert os.environ[variable] == "2"


def test_without_threadpoolctl_openblas_s_own_call_sizes_blas(unset, monkeypatch):
    blas = BlasThreads.find()
    if blas is None:
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import threadpoolctl: ImportError
    share = max(1, usable_cores() // 4)
    assert world.share_cores(4)["blas"] == share
    assert blas.get() == share


WHAT_EACH_RANK_HAS = """
import json, os, sys
from threadpoolctl import threadpool_info
from autograd_cnn.distributed import world
import autograd_cnn as ag
world.init()
blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
with open(os.path.join(sys.argv[1], f"rank{world.rank()}.json"), "w") as f:  # not stdout: lines may mix
    json.dump({"rank": world.rank(), "blas": blas, "kernels": ag.get_backend().threads,
               "numba": os.environ.get("NUMBA_NUM_THREADS")}, f)
"""


@needs_mpi
def test_each_rank_under_mpiexec_takes_its_share(tmp_path):
    env = {k: v for k, v in _env().items() if k not in USER_VARIABLES}  # as a user runs it: nothing set
    code, out, err, _ = mpiexec(2, "-c", WHAT_EACH_RANK_HAS, str(tmp_path), env=env, timeout=60)
    assert code == 0, err[-3000:]
    share = max(1, usable_cores() // 2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    for rank in ranks:
        assert rank["blas"] and set(rank["blas"]) == {share}
        assert rank["kernels"] == share or not NUMBA_OK or ag.get_backend("numba").blas is None
        assert rank["numba"] == str(share)
