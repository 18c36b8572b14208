"""Backends: choosing one (variable, aliases, set/use/get), errors that say what to do,
and the rule that inputs on two backends are an error naming both."""
from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import autograd_cnn as ag
from autograd_cnn import backends
from autograd_cnn.backends import Backend, NumpyBackend, cupy_usable, numba_installed
from autograd_cnn.backends.threads import Workers
from autograd_cnn.errors import BackendError

CUPY_OK, CUPY_WHY = cupy_usable()
FASTEST_CPU = "numba" if numba_installed() else "numpy"


def _import_with(value: str | None, code: str = "import autograd_cnn as ag; print(ag.get_backend().name)",
                 **env_extra: str) -> subprocess.CompletedProcess:
    """Import the package in a fresh interpreter with AUTOGRAD_CNN_BACKEND set to ``value``."""
    env = dict(os.environ, **env_extra)
    env.pop("AUTOGRAD_CNN_BACKEND", None)
    if value is not None:
        env["AUTOGRAD_CNN_BACKEND"] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------- AUTOGRAD_CNN_BACKEND


@pytest.mark.parametrize("value", ["numpy", "NumPy", " np "])
def test_variable_chooses_numpy(value):
    run = _import_with(value)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "numpy"


@pytest.mark.parametrize("value", [None, "", "cpu", " CPU "])
def test_unset_or_cpu_means_the_fastest_cpu_backend_installed(value):
    run = _import_with(value)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == FASTEST_CPU


@pytest.mark.skipif(not numba_installed(), reason="Numba is not installed")
def test_variable_chooses_numba():
    run = _import_with("numba")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "numba"


def test_numba_that_cannot_be_imported(tmp_path):
    """A Numba that is found but fails to import: unset falls back to numpy; asked for, an error
    that names the variable and what to install."""
    (tmp_path / "numba.py").write_text("raise ImportError('a broken numba')\n")
    unset = _import_with(None, PYTHONPATH=str(tmp_path))
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.strip() == "numpy"
    asked = _import_with("numba", PYTHONPATH=str(tmp_path))
    assert asked.returncode != 0, "must never fall back silently"
    last = asked.stderr.strip().splitlines()[-1]
    assert "AUTOGRAD_CNN_BACKEND=numba" in last and "autograd-cnn[fast]" in last and "a broken numba" in last


def test_unknown_backend_fails_at_import_naming_variable_value_and_choices():
    run = _import_with("tpu")
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "BackendError" in last
    assert "AUTOGRAD_CNN_BACKEND=tpu" in last and "'tpu'" in last
    assert "numpy" in last and "cupy" in last and "auto" in last


@pytest.mark.skipif(CUPY_OK, reason="CuPy works here, so this error cannot happen")
@pytest.mark.parametrize("value", ["cupy", "gpu", "cuda"])
def test_cupy_without_cupy_fails_at_import_saying_what_to_install(value):
    run = _import_with(value)
    assert run.returncode != 0, "must never fall back silently"
    last = run.stderr.strip().splitlines()[-1]
    assert f"AUTOGRAD_CNN_BACKEND={value}" in last
    assert "pip install" in last and "cupy" in last.lower()


def test_auto_takes_cupy_only_where_it_works():
    run = _import_with("auto")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ("cupy" if CUPY_OK else FASTEST_CPU)


@pytest.mark.parametrize("value", [None, "numpy"])
def test_import_is_light(value):
    # Unset, the default is numba where installed, but Numba is imported with the first tensor.
    code = ("import sys, autograd_cnn; heavy = [m for m in ('matplotlib', 'graphviz', 'tqdm', 'cupy', 'torch', "
            "'numba') if m in sys.modules]; print(heavy)")
    run = _import_with(value, code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# The page faults of five rounds of allocating and freeing a 12 MiB and a 20 MiB array: with
# the memory cache the second and later rounds reuse the freed blocks and fault almost never.
_FAULTS = """
import resource, sys, numpy as np, autograd_cnn as ag
cpu = ag.get_backend(sys.argv[1])
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def work():
    a = np.ones(3_000_000, np.float32); b = np.ones(5_000_000, np.float32); del a, b
work()
before = faults()
for _ in range(5):
    work()
print(getattr(cpu, "caches_memory", False), faults() - before)
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION")),
                    reason="the memory cache sets glibc's malloc, which only Linux with glibc has")
@pytest.mark.skipif(not numba_installed(), reason="the numba backend keeps freed memory; Numba is not installed")
def test_memory_cache_keeps_freed_blocks_unless_turned_off():
    results = {}
    for backend, setting in (("numba", None), ("numba", "0"), ("numpy", None)):
        env = dict(os.environ)
        env.pop("AUTOGRAD_CNN_CACHE_MEMORY", None)
        if setting is not None:
            env["AUTOGRAD_CNN_CACHE_MEMORY"] = setting
        run = subprocess.run([sys.executable, "-c", _FAULTS, backend], env=env, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        on, faults = run.stdout.split()
        results[backend, setting] = (on, int(faults))
    assert results["numba", None][0] == "True" and results["numba", None][1] < 100
    # Turned off, glibc's own settings apply: it maps the blocks afresh and faults on them.
    assert results["numba", "0"][0] == "False" and results["numba", "0"][1] > 200
    # The NumPy backend, the plain reference, leaves malloc as the program found it.
    assert results["numpy", None][0] == "False" and results["numpy", None][1] > 200


# --------------------------------------------------------------------------- worker threads


def test_workers_return_each_parts_result_in_order():
    assert Workers(3).run(lambda part: part * part, list(range(20))) == [p * p for p in range(20)]


def test_workers_run_parts_on_two_threads_at_once():
    # Each of the first two parts waits for the other: one thread alone would time out here.
    meet, threads = threading.Barrier(2, timeout=20), set()

    def part(index):
        threads.add(threading.get_ident())
        if index < 2:
            meet.wait()
        return index

    assert Workers(2).run(part, list(range(6))) == list(range(6))
    assert len(threads) == 2


def test_workers_raise_a_parts_error_and_run_inner_calls_inline():
    workers = Workers(2)

    def failing(index):
        if index == 3:
            raise ValueError("part 3 failed")
        return index

    with pytest.raises(ValueError, match="part 3 failed"):
        workers.run(failing, list(range(8)))
    # A part that splits its own work runs those parts itself: no thread waits for a busy one.
    assert workers.run(lambda i: sum(workers.run(lambda j: i * j, [1, 2])), [1, 2, 3]) == [3, 6, 9]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forking needs a POSIX system")
def test_workers_start_again_in_a_forked_child():
    workers = Workers(2)
    workers.run(lambda part: part, [0, 1])  # the parent's helper thread is running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child has no helper thread until run starts one
        ok = False
        try:
            meet = threading.Barrier(2, timeout=20)
            ok = workers.run(lambda part: meet.wait() >= 0, [0, 1]) == [True, True]
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


def test_batch_parts_sizes():
    cpu = ag.get_backend("numpy")
    assert cpu.batch_parts(128, 100) == [slice(0, 128)], "under min_parallel_bytes: one part"
    parts = cpu.batch_parts(128, 1 << 20)  # 128 MiB in all
    assert parts[0].start == 0 and parts[-1].stop == 128 and len(parts) >= cpu.threads
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert cpu.batch_parts(1, 1 << 30) == [slice(0, 1)]


@pytest.mark.skipif(not numba_installed(), reason="the worker threads are the numba backend's")
def test_run_parts_holds_blas_to_one_thread_and_gives_its_count_back():
    cpu = ag.get_backend("numba")
    cpu.release_blas()  # as a program finds it, not as a long product run by another test left it
    cpu.run_parts(lambda part: part, [0, 1])  # ends BLAS's threads if such a product left them spinning
    cpu.release_blas()
    if cpu.threads < 2 or cpu.blas is None or cpu.blas.get() < 2:
        pytest.skip("runs where OpenBLAS is found and may use two threads or more")
    before = cpu.blas.get()
    assert set(cpu.run_parts(lambda part: cpu.blas.get(), [0, 1, 2, 3])) == {1}
    assert cpu.blas.get() == before
    cpu.blas.set(1)  # held to one thread (OMP_NUM_THREADS=1, threadpoolctl): the parts run on the caller
    try:
        assert set(cpu.run_parts(lambda part: threading.get_ident(), [0, 1, 2, 3])) == {threading.get_ident()}
    finally:
        cpu.blas.set(before)


@pytest.mark.skipif(not numba_installed(), reason="the worker threads are the numba backend's")
def test_release_blas_gives_blas_its_count_back_after_a_long_product():
    cpu = ag.get_backend("numba")
    if cpu.threads < 2 or cpu.blas is None or not cpu.blas.can_stop:
        pytest.skip("runs where OpenBLAS is found, can end its threads and the kernels use two threads or more")
    cpu.release_blas()
    before = cpu.blas.get()
    if before < 2:
        pytest.skip("OpenBLAS is held to one thread here")
    a = np.ones((256, 256), dtype=np.float32)
    np.testing.assert_array_equal(cpu.blas_product(a, a), a @ a)
    cpu.run_parts(lambda part: part, [0, 1])  # ends BLAS's spinning threads and keeps it on one
    assert cpu.blas.get() == 1
    cpu.release_blas()
    assert cpu.blas.get() == before


@pytest.mark.skipif(not numba_installed(), reason="the worker threads are the numba backend's")
def test_threads_variable_sets_the_kernel_threads():
    code = "import autograd_cnn as ag; print(ag.get_backend('numba').threads)"
    env = {**os.environ, "AUTOGRAD_CNN_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "1"


# --------------------------------------------------------------------------- set/use/get/available


def test_get_backend_and_aliases():
    numpy_backend = ag.get_backend("numpy")
    assert isinstance(numpy_backend, NumpyBackend) and numpy_backend.xp is np
    assert ag.get_backend("NP") is numpy_backend and ag.get_backend("cpu").name == FASTEST_CPU
    assert ag.get_backend(numpy_backend) is numpy_backend
    assert numpy_backend == "numpy" and str(numpy_backend) == "numpy"
    assert ag.get_backend("auto").name == ("cupy" if CUPY_OK else FASTEST_CPU)
    with pytest.raises(BackendError, match=r"unknown backend 'tpu'.*numpy, numba, cpu"):
        ag.get_backend("tpu")


@pytest.mark.skipif(CUPY_OK, reason="CuPy works here")
@pytest.mark.parametrize("alias", ["cupy", "gpu", "cuda"])
def test_cupy_aliases_without_cupy_say_what_to_install(alias):
    before = ag.get_backend()
    with pytest.raises(BackendError, match=r"pip install"):
        ag.set_backend(alias)
    assert ag.get_backend() is before, "a failed choice leaves the default alone"


@pytest.mark.skipif(not CUPY_OK, reason=f"CuPy backend unusable: {CUPY_WHY}")
@pytest.mark.parametrize("alias", ["cupy", "gpu", "cuda"])
def test_cupy_aliases(alias):
    assert ag.get_backend(alias).name == "cupy"


def test_set_backend_and_use_backend_restore():
    with ag.use_backend("cpu") as b:
        assert b.name == FASTEST_CPU and ag.tensor([1.0]).backend == FASTEST_CPU
    previous = ag.get_backend()
    try:
        assert ag.set_backend("numpy") is ag.get_backend("numpy")
        with pytest.raises(BackendError):
            ag.set_backend("nonsense")
        assert ag.get_backend() is ag.get_backend("numpy")
    finally:
        ag.set_backend(previous)
    with pytest.raises(KeyError), ag.use_backend("numpy"):
        raise KeyError("inside")
    assert ag.get_backend() is previous


def test_available_backends():
    names = ag.available_backends()
    assert names[0] == "numpy"
    assert ("numba" in names) == numba_installed()
    assert ("cupy" in names) == CUPY_OK



def test_a_backend_copies_and_pickles_to_its_one_instance():
    numpy_backend = ag.get_backend("numpy")
    assert copy.deepcopy(numpy_backend) is numpy_backend
    assert pickle.loads(pickle.dumps(numpy_backend)) is numpy_backend


def test_kernel_families_share_no_method_name():
    """XpBackend composes one class per kernel family; a name in two would make their order matter."""
    from autograd_cnn.backends.xp_backend import XpBackend

    families = [cls for cls in XpBackend.__mro__ if cls.__name__.endswith("Kernels")]
    assert len(families) == len(XpBackend.__bases__) == 8
    owner: dict[str, str] = {}
    for family in families:
        for name in vars(family):
            if not name.startswith("__"):
                assert name not in owner, f"{name} is defined in both {owner[name]} and {family.__name__}"
                owner[name] = family.__name__

# --------------------------------------------------------------------------- two backends


class FakeBackend(Backend):
    """A second array library for the test: NumPy arrays under another name."""

    name = "fake"
    xp = np

    def to_host(self, array):
        return np.asarray(array)

    def from_host(self, array):
        return np.array(array)


@pytest.fixture
def fake(monkeypatch):
    backend = FakeBackend()
    monkeypatch.setitem(backends._instances, "fake", backend)
    return backend


def test_mixing_backends_names_both(fake):
    mine = ag.Tensor(np.ones(3, dtype=np.float32), fake, requires_grad=True)
    assert mine.backend == "fake"
    host = ag.tensor(np.ones(3, dtype=np.float32), backend="numpy")
    for op in (lambda: host + mine, lambda: mine * host, lambda: ag.where(host > 0, mine, host),
               lambda: ag.concat([host, mine])):
        with pytest.raises(BackendError) as err:
            op()
        message = str(err.value)
        assert "numpy" in message and "fake" in message and ".to(" in message


def test_ops_follow_their_inputs_backend(fake):
    t = ag.Tensor(np.arange(3.0), fake, requires_grad=True)
    y = (t * 2 + 1).exp().sum()
    assert y.backend == "fake"
    y.backward()
    assert t.grad.backend == "fake"
    moved = t.to("numpy")
    assert moved.backend == "numpy"
    (moved * 3).sum().backward()
    assert t.grad.backend == "fake", "the gradient of .to() goes back to the source backend"


def test_our_errors_pass_through_apply_unchanged():
    """Function.apply turns stray NumPy errors into ShapeError, but never rewraps our own."""
    from autograd_cnn.autograd import Function
    from autograd_cnn.errors import GraphError, ShapeError

    class Raises(Function):
        """y = x, or an error"""
        @staticmethod
        def forward(ctx, x, error=None):
            raise error

    with pytest.raises(GraphError, match="^exact text$"):
        Raises.apply(ag.tensor([1.0]), error=GraphError("exact text"))
    with pytest.raises(BackendError, match="^exact text$"):
        Raises.apply(ag.tensor([1.0]), error=BackendError("exact text"))
    with pytest.raises(ShapeError) as err:
        Raises.apply(ag.tensor(np.ones((2, 3))), error=ValueError("numpy said no"))
    assert str(err.value).startswith("Raises: cannot apply to inputs of shapes (2, 3)")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_inputs_of_unknown_types_are_named():
    with pytest.raises(TypeError, match="Mul: cannot use an input of type str"):
        ag.tensor([1.0]) * "x"


def test_new_tensors_go_to_the_default_backend(fake):
    default = ag.get_backend()
    with ag.use_backend(fake):
        for t in (ag.tensor([1.0]), ag.tensor(np.ones(2)), ag.from_numpy(np.ones(2)), ag.zeros(2), ag.randn(2),
                  ag.arange(3)):
            assert t.backend == "fake"
        assert ag.tensor(np.ones(2), backend="numpy").backend == "numpy"
    assert ag.tensor(np.ones(2)).backend == default.name
