"""Many processes, for real: ``mpiexec -n 2`` and ``-n 3`` run tests/distributed_worker.py.

The defining property: k processes with batch b end where one process with batch k*b ends on
the same samples, for fit and for the PyTorch-style loop. Then: every rank holds the same
parameters bit for bit, the same History, only rank 0 writes files, evaluate and predict share
the work, a dead rank stops the others with our error within the timeout, and the same script
runs under plain python as one process without loading MPI.

Each mpiexec runs in a process group of its own, ended by its id on timeout; none is left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from distributed_worker import BATCH, CASES, EVAL_SAMPLES, fit_case, loop_case, on_batch_case, samples

import autograd_cnn as ag
from autograd_cnn import backends, models
from autograd_cnn.backends import cupy_usable
from autograd_cnn.backends.threads import THREADS_ENV_VAR, usable_cores
from autograd_cnn.distributed.world import share_cores

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"
# mpiexec of the MPI that mpi4py was installed with (the mpich wheel puts it beside python).
MPIEXEC = next((str(p) for p in [Path(sys.executable).parent / "mpiexec"] if p.exists()), shutil.which("mpiexec"))
needs_mpi = pytest.mark.skipif(find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="needs mpi4py and mpiexec: pip install 'autograd-cnn[mpi]'")
LAUNCHER_VARIABLES = ("PMI_", "OMPI_", "MV2_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "HYDRA_")


def _env(**extra: str) -> dict:
    """This environment without an enclosing MPI job's variables, one BLAS thread a process
    (two or three processes share the cores), and this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARIABLES)}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]), **extra)
    return env


def launch(command: list[str], timeout: float, env: dict | None = None) -> tuple[int, str, str, float]:
    """Run ``command`` in a new session; on timeout end its whole process group. Returns
    (exit code, stdout, stderr, seconds), and checks that no process of the group is left."""
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env or _env(), cwd=HERE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(command[:4])} ran past {timeout} s; its process group was ended.\n{err[-3000:]}")
    finally:
        _no_process_left(proc.pid)
    return proc.returncode, out, err, time.monotonic() - start


def _no_process_left(group: int) -> None:
    for _ in range(50):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)
    pytest.fail("processes of the job were still running after mpiexec ended; they were killed")


def mpiexec(n: int, *args: str, timeout: float = 120, flags: tuple = (), env: dict | None = None) -> tuple:
    return launch([MPIEXEC, *flags, "-n", str(n), sys.executable, *args], timeout, env)


# --------------------------------------------------------------------------- training, k = 2 and 3


@pytest.fixture(scope="module", params=[2, 3], ids=["2 processes", "3 processes"])
def job(request, tmp_path_factory):
    """One ``mpiexec -n k`` of the worker's "train": each rank's arrays and report."""
    k = request.param
    out = tmp_path_factory.mktemp(f"job{k}")
    code, stdout, err, _ = mpiexec(k, str(WORKER), "train", str(out))
    assert code == 0, err[-4000:]
    (out / "stdout.txt").write_text(stdout)
    arrays = [dict(np.load(out / f"rank{r}.npz")) for r in range(k)]
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(k)]
    return k, arrays, reports, out


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference, relative to the tensor's largest value."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _norm_diff(a: np.ndarray, b: np.ndarray) -> float:
    """The difference's norm, relative to the tensor's. For float32: RMSprop and Adam divide each
    step by the gradient's own size, so an element whose gradient is rounding noise (about 0)
    moves by a sizeable step either way, whatever the summation order; over the tensor it is noise."""
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-300))


def _close(case: str, ours: np.ndarray, theirs: np.ndarray) -> bool:
    if CASES[case][2] == "float64":
        return _rel_diff(ours, theirs) <= 1e-10
    return _norm_diff(ours, theirs) <= 1e-5


@needs_mpi
def test_every_rank_ends_with_the_same_parameters_bit_for_bit(job):
    k, arrays, reports, _ = job
    assert [r["rank"] for r in reports] == list(range(k)) and all(r["size"] == k for r in reports)
    per_process = {"bn/1.running_mean", "bn/1.running_var"}  # batch norm's statistics are each process's own
    for r in range(1, k):
        for name, value in arrays[0].items():
            if name not in per_process and name != "predict":
                assert value.dtype == arrays[r][name].dtype
                assert np.array_equal(value, arrays[r][name]), f"{name} differs between rank 0 and rank {r}"


@needs_mpi
@pytest.mark.parametrize("case", list(CASES))
def test_k_processes_train_as_one_process_with_k_times_the_batch(job, case):
    k, arrays, reports, _ = job
    reference, history = fit_case(case, k, k * BATCH)  # this process: a world of one
    for name, value in reference.state_dict().items():
        ours = arrays[0][f"{case}/{name}"]
        assert ours.dtype == value.dtype
        assert _close(case, ours, value.numpy()), f"{case}: {name}"
    assert reports[0]["histories"][case]["accuracy"] == history.history["accuracy"]
    # F1 from the confusion matrices summed over the processes: the one process's F1 of all samples
    np.testing.assert_allclose(reports[0]["histories"][case]["f1"], history.history["f1"], rtol=1e-12)
    np.testing.assert_allclose(reports[0]["histories"][case]["loss"], history.history["loss"],
                               rtol=1e-10 if CASES[case][2] == "float64" else 1e-5)


@needs_mpi
def test_the_training_moved_the_weights(job):
    """The equality above would hold trivially if nothing trained."""
    k, arrays, _, _ = job
    ag.manual_seed(0)
    initial = models.lecture_cnn().double().state_dict()
    assert all(_rel_diff(arrays[0][f"cnn-sgd-f64/{n}"], t.numpy()) > 1e-4 for n, t in initial.items())


@needs_mpi
def test_history_is_the_same_on_every_rank(job):
    _, _, reports, _ = job
    assert all(r["histories"] == reports[0]["histories"] for r in reports)
    assert all(len(h["loss"]) == 2 for h in reports[0]["histories"].values())


@needs_mpi
def test_only_rank_0_writes_the_checkpoints(job):
    k, arrays, reports, out = job
    assert [Path(p).name for p in reports[0]["checkpoint_writes"]] == ["checkpoint-1.npz", "checkpoint-2.npz"]
    assert all(r["checkpoint_writes"] == [] for r in reports[1:])
    saved = ag.load(str(out / "checkpoint-2.npz"))
    assert all(np.array_equal(t.numpy(), arrays[0][f"cnn-adam-f64/{n}"]) for n, t in saved.items())
    said = [line for line in (out / "stdout.txt").read_text().splitlines() if "saved the model" in line]
    assert [line.split(":")[0] for line in said] == ["Epoch 1", "Epoch 2"], "one line an epoch, from rank 0 only"


@needs_mpi
def test_evaluate_and_predict_share_the_samples_and_gather_the_results(job):
    """7 samples over 2 or 3 processes: uneven shares, put back together in order."""
    k, arrays, reports, _ = job
    model = models.lecture_cnn().double()
    model.load_state_dict({n: arrays[0][f"cnn-adam-f64/{n}"] for n in model.state_dict()})
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = samples(EVAL_SAMPLES, seed=5)
    loss, accuracy = model.evaluate(x, y, batch_size=3, verbose=0)
    probabilities = model.predict(x, batch_size=3)
    for r in range(k):
        assert reports[r]["evaluate"][1] == accuracy
        assert abs(reports[r]["evaluate"][0] - loss) <= 1e-12 * abs(loss)
        assert arrays[r]["predict"].shape == (EVAL_SAMPLES, 10)
        np.testing.assert_allclose(arrays[r]["predict"], probabilities, rtol=1e-12, atol=1e-15)


@needs_mpi
def test_the_pytorch_style_loop_with_data_parallel_and_a_sharded_loader(job):
    k, arrays, _, _ = job
    reference = loop_case(k, wrap=False)
    for name, value in reference.state_dict().items():
        assert _rel_diff(arrays[0][f"loop/{name}"], value.numpy()) <= 1e-10, name


@needs_mpi
def test_train_on_batch_averages_the_processes_parts_as_one_batch(job):
    """Each process passes its own part of every batch: the steps and the reported loss and
    accuracy are one process's on the whole batches, from rank 0's initial weights."""
    k, arrays, reports, _ = job
    reference, results = on_batch_case(k, None)
    for i, value in enumerate(reference.get_weights()):
        assert _rel_diff(arrays[0][f"on_batch/{i}"], value) <= 1e-10, i
    for r in range(k):
        np.testing.assert_allclose(reports[r]["on_batch"], results, rtol=1e-10)


@needs_mpi
def test_data_parallel_evens_out_the_weights_and_keeps_each_process_statistics(job):
    k, arrays, reports, _ = job
    assert reports[0]["bn_keys"] == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias",
                                     "1.running_mean", "1.running_var"]  # the wrapped model's own names
    assert reports[0]["bn_buckets"] == 1  # 25 MB holds the whole model
    means = [a["bn/1.running_mean"] for a in arrays]
    assert all(not np.array_equal(means[0], m) for m in means[1:]), "each process saw its own samples"


@needs_mpi
def test_the_processes_on_a_machine_share_its_cores(job):
    """Each rank's CPU kernels run on its share of the cores: k processes with a thread per core
    each would make the cores take turns."""
    k, _, reports, _ = job
    share = max(1, usable_cores() // k) if "numba" in ag.available_backends() else 1  # numpy: the caller's thread
    assert all(report["kernel_threads"] == share for report in reports)


def test_a_lone_process_or_a_set_thread_count_keeps_its_threads(monkeypatch):
    if "numba" not in ag.available_backends():
        pytest.skip("the worker threads are the numba backend's; Numba is not installed")
    cpu = ag.get_backend("numba")
    monkeypatch.setattr(backends, "_cpu_threads", backends._cpu_threads)
    monkeypatch.setattr(cpu, "threads", cpu.threads)
    monkeypatch.setattr(cpu, "workers", cpu.workers)
    before = cpu.threads
    share_cores(1)
    assert cpu.threads == before
    monkeypatch.setenv(THREADS_ENV_VAR, "2")
    share_cores(4)
    assert cpu.threads == before
    monkeypatch.delenv(THREADS_ENV_VAR)
    share_cores(4)
    assert cpu.threads == (max(1, usable_cores() // 4) if cpu.blas is not None else 1)


@needs_mpi
def test_collectives(job):
    k, _, reports, _ = job
    ranks = np.arange(k)
    rows = np.stack([ranks, -ranks, 2.0 * ranks + 1], axis=1)
    for report in reports:
        c = report["collectives"]
        np.testing.assert_array_equal(c["sum"], rows.sum(axis=0))
        np.testing.assert_allclose(c["mean"], rows.mean(axis=0))
        np.testing.assert_array_equal(c["max"], rows.max(axis=0))
        np.testing.assert_array_equal(c["min"], rows.min(axis=0))
        assert c["sum_int"] == [k * (k + 1) // 2]
        np.testing.assert_array_equal(c["broadcast"], (np.arange(12.0).reshape(3, 4) * k).T)
        assert c["gather"] == [[float(r)] * 2 for r in range(k)]
        held = ", ".join(f"rank {r}: (2, {3 + r}) float32" for r in range(k))
        assert c["mismatch"] == (f"dist.all_reduce on rank {report['rank']} of {k}: every process must pass a "
                                 f"tensor of one shape and dtype, but they hold {held}")


@needs_mpi
def test_a_sharded_loader_gives_each_process_an_equal_part_of_one_permutation(job):
    k, _, reports, _ = job
    parts = {name: [r["shards"][name] for r in reports] for name in ("in_order", "shuffled", "drop_last")}
    rows = -(-10 // k)  # every process the same count: the order wraps around to fill the last row of k
    for name in ("in_order", "shuffled"):
        assert all(p["len"] == -(-rows // 2) and len(p["rows"]) == rows for p in parts[name])
        taken = sorted(v for p in parts[name] for v in p["rows"])
        assert set(taken) == set(range(10)) and len(taken) == rows * k
    assert parts["in_order"][1]["rows"][:3] == [1.0, 1.0 + k, 1.0 + 2 * k]  # every k-th from its rank
    assert parts["shuffled"][0]["rows"] != parts["in_order"][0]["rows"]
    kept = [v for p in parts["drop_last"] for v in p["rows"]]
    assert all(p["len"] == (10 // k) // 2 for p in parts["drop_last"])
    assert len(set(kept)) == len(kept) == ((10 // k) // 2) * 2 * k  # nothing twice, whole batches only


@needs_mpi
def test_a_model_is_wrapped_once(job):
    k, _, reports, _ = job
    assert reports[0]["twice"].startswith("DataParallel: parameters 1.weight, 1.bias, 3.weight, 3.bias are "
                                          "averaged already (a model wrapped twice?)")


# --------------------------------------------------------------------------- failures


@needs_mpi
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_dead_rank_stops_the_others_with_our_error_not_a_hang(tmp_path, how):
    """Rank 1 ends itself at its third step (os._exit, or SIGKILL). mpiexec would end the others
    itself at once (-disable-auto-cleanup stops that after an exit; after a kill it sends SIGUSR1,
    then SIGKILL, which a shell between it and each process takes instead): here the survivor
    must notice alone, as when a whole machine is lost, launcher and all."""
    shell = ["sh", "-c", '"$@"; exit $?', "sh"] if how == "kill" else []
    code, _, _, seconds = launch([MPIEXEC, "-disable-auto-cleanup", "-n", "2", *shell, sys.executable, str(WORKER),
                                  "die", how, str(tmp_path)], timeout=60, env=_env(AUTOGRAD_CNN_DIST_TIMEOUT="3"))
    assert code != 0
    err = (tmp_path / "rank0.err").read_text()  # what rank 0 wrote, whatever became of mpiexec's forwarding
    message = next((line for line in err.splitlines() if line.startswith("autograd_cnn.errors.")), "")
    # rank 0 waits in the next collective (the running loss's sum, or the next step's gradients) and names it
    assert message.startswith("autograd_cnn.errors.DistributedError: fit on rank 0 of 2 ("), err[-3000:]
    assert "did not join within 3 s" in message and "AUTOGRAD_CNN_DIST_TIMEOUT" in message
    assert seconds < 40


@needs_mpi
def test_a_loss_that_is_not_finite_on_one_rank_stops_every_rank_at_that_step(tmp_path):
    """Rank 1's loss turns inf at its fifth step; the others' stays finite. All must stop there,
    before the update, with the same weights: those of the fourth step (and none may hang)."""
    code, _, err, _ = mpiexec(2, str(WORKER), "nonfinite", str(tmp_path), timeout=60,
                              env=_env(AUTOGRAD_CNN_DIST_TIMEOUT="20"))
    assert code == 0, err[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for report in reports:
        assert report["message"].startswith("NonFiniteError: fit: stopped at epoch 2, step 1, before its update"), \
            report["message"]
        assert report["same"]
    assert "the loss is inf" in reports[1]["message"]
    assert "another process's loss may be the one" in reports[0]["message"]
    first, second = (np.load(tmp_path / f"rank{r}.npz") for r in range(2))
    assert all(np.array_equal(first[k], second[k]) for k in first.files)


@needs_mpi
def test_an_unknown_timeout_is_a_clear_error():
    code, _, err, _ = launch([sys.executable, "-c", "from autograd_cnn.distributed import world; world.timeout()"],
                             timeout=60, env=_env(AUTOGRAD_CNN_DIST_TIMEOUT="soon"))
    assert code != 0 and "AUTOGRAD_CNN_DIST_TIMEOUT='soon'" in err and "number above 0" in err


# --------------------------------------------------------------------------- one process, the command line


def test_the_same_script_runs_as_one_process_under_plain_python(tmp_path):
    code, _, err, _ = launch([sys.executable, str(WORKER), "train", str(tmp_path)], timeout=120)
    assert code == 0, err[-3000:]
    report = json.loads((tmp_path / "rank0.json").read_text())
    assert report["size"] == 1 and report["mpi4py"] is False  # MPI is not even loaded
    assert len(report["checkpoint_writes"]) == 2
    arrays = np.load(tmp_path / "rank0.npz")
    model, _ = fit_case("mlp-adam-f64", 1, BATCH)  # here, with this process's BLAS threads
    assert all(_close("mlp-adam-f64", arrays[f"mlp-adam-f64/{n}"], t.numpy()) for n, t in model.state_dict().items())


def test_importing_and_asking_costs_no_mpi():
    code = ("import sys, autograd_cnn as ag; from autograd_cnn import distributed as dist; "
            "t = dist.all_reduce(ag.tensor([1.0, 2.0]), 'mean'); "
            "print(dist.rank(), dist.world_size(), dist.is_main(), t.numpy().tolist(), 'mpi4py' in sys.modules)")
    status, out, err, _ = launch([sys.executable, "-c", code], timeout=60)
    assert status == 0, err
    assert out.split() == ["0", "1", "True", "[1.0,", "2.0]", "False"]


@needs_mpi
def test_the_command_line_trains_under_mpiexec(tmp_path):
    code, out, err, _ = mpiexec(2, "-m", "autograd_cnn", "train", "--model", "lecture-mlp", "--dataset", "sample",
                                "--epochs", "1", "--limit", "64", "--batch-size", "16",
                                "--save", str(tmp_path / "w.npz"))
    assert code == 0, err[-3000:]
    assert out.count("Total params: 407,050") == 1 and out.count("test accuracy:") == 1  # rank 0 alone prints
    assert "2 processes of 16 images a step each" in out
    assert (tmp_path / "w.npz").exists()
    code, out, err, _ = mpiexec(2, "-m", "autograd_cnn", "info", timeout=60)
    assert code == 0, err[-3000:]
    assert "processes: 2 (started by an MPI launcher)" in out and "MPI: mpi4py" in out and "NCCL:" in out


# --------------------------------------------------------------------------- GPUs

_CUPY_OK, _CUPY_WHY = cupy_usable()


def _gpus() -> int:
    import cupy

    return cupy.cuda.runtime.getDeviceCount()


@needs_mpi
@pytest.mark.gpu
@pytest.mark.skipif(not _CUPY_OK, reason=f"CuPy backend unusable: {_CUPY_WHY}")
@pytest.mark.parametrize("backend", ["nccl", "mpi"])
def test_cupy_tensors_across_processes(tmp_path, backend):
    if backend == "nccl":
        from autograd_cnn.distributed.links import nccl_status

        ok, why = nccl_status()
        if not ok:
            pytest.skip(why)
        if _gpus() < 2:
            pytest.skip("NCCL needs a GPU for each process: fewer than 2 GPUs here")
    script = tmp_path / "gpu.py"
    script.write_text(
        "import numpy as np, autograd_cnn as ag\n"
        "from autograd_cnn import distributed as dist, models, optim\n"
        f"dist.init({backend!r})\n"
        "r = dist.rank()\n"
        "t = dist.all_reduce(ag.tensor(np.arange(3.0) + r, backend='cupy'))\n"
        "assert t.backend == 'cupy' and t.numpy().tolist() == [1.0, 3.0, 5.0], t\n"
        "ag.manual_seed(r)\n"
        "model = dist.DataParallel(models.lecture_cnn(softmax=False).to('cupy'))\n"
        "opt = optim.SGD(model.parameters(), lr=0.1)\n"
        "x = ag.rand(4, 1, 28, 28, backend='cupy')\n"
        "model(x).sum().backward(); opt.step()\n"
        "w = model.module[0].weight\n"
        "same = dist.all_gather(w.detach())\n"
        "assert all((g.numpy() == same[0].numpy()).all() for g in same)\n")
    code, _, err, _ = mpiexec(2, str(script), env=_env(AUTOGRAD_CNN_BACKEND="cupy"))
    assert code == 0, err[-3000:]
