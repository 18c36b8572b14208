"""The script that tests/test_distributed.py runs under ``mpiexec -n k`` (and under plain python).

    python distributed_worker.py train OUT     # fit, DataParallel, collectives; results in OUT
    python distributed_worker.py die exit|kill OUT  # rank 1 dies in fit; the others must not hang
    python distributed_worker.py nonfinite OUT     # rank 1's loss turns inf: every rank stops there

Each process writes what it ended with to OUT/rank<r>.npz and OUT/rank<r>.json; the test
compares them with each other and with one process trained on k times the batch.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

import autograd_cnn as ag
import autograd_cnn.functional as F
from autograd_cnn import data, models, nn, optim, serialization
from autograd_cnn import distributed as dist

BATCH = 4  # per process
STEPS = 2  # optimizer steps per epoch
EPOCHS = 2
# name: (model, optimizer, dtype)
CASES = {
    "cnn-sgd-f64": ("lecture_cnn", "sgd", "float64"),
    "cnn-rmsprop-f64": ("lecture_cnn", "rmsprop", "float64"),
    "cnn-adam-f64": ("lecture_cnn", "adam", "float64"),
    "mlp-sgd-f64": ("lecture_mlp", "sgd", "float64"),
    "mlp-rmsprop-f64": ("lecture_mlp", "rmsprop", "float64"),
    "mlp-adam-f64": ("lecture_mlp", "adam", "float64"),
    "cnn-adam-f32": ("lecture_cnn", "adam", "float32"),
    "mlp-rmsprop-f32": ("lecture_mlp", "rmsprop", "float32"),
}
EVAL_SAMPLES = 7  # shared unevenly by 2 or 3 processes


def samples(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """n digit-shaped images (N, 1, 28, 28) in [0, 1] and labels: the same on every process."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(n, 1, 28, 28)), rng.integers(0, 10, size=n)


def optimizer(name: str, params: list) -> optim.Optimizer:
    if name == "sgd":
        return optim.SGD(params, lr=0.05, momentum=0.9)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=1e-3)
    return optim.Adam(params, lr=1e-3)


def fit_case(case: str, processes: int, batch_size: int, callbacks: list | None = None) -> tuple:
    """Train one case with ``fit``: (model, History). ``processes`` sets the data's size, so one
    process with batch k * BATCH sees the samples that k processes with BATCH see together."""
    model_name, opt_name, dtype = CASES[case]
    x, y = samples(processes * BATCH * STEPS)
    ag.manual_seed(0)
    model = getattr(models, model_name)().to(dtype)
    model.compile(optimizer=optimizer(opt_name, list(model.parameters())),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy", "f1"])
    history = model.fit(x.astype(dtype), y, epochs=EPOCHS, batch_size=batch_size, verbose=0,
                        callbacks=callbacks)
    return model, history


def loop_case(processes: int, wrap: bool) -> nn.Module:
    """The PyTorch-style loop: DataParallel and a sharded DataLoader (wrap), or one process with
    k times the batch; small buckets, so the gradients travel in several."""
    x, y = samples(processes * BATCH * STEPS, seed=2)
    ag.manual_seed(0)
    model = models.lecture_cnn(softmax=False).double()
    trained = dist.DataParallel(model, bucket_mb=0.1) if wrap else model
    opt = optim.Adam(trained.parameters(), lr=1e-3)
    batches = data.DataLoader(x, y, batch_size=BATCH if wrap else processes * BATCH, seed=3, shard=wrap)
    for _ in range(EPOCHS):
        for xb, yb in batches:
            opt.zero_grad()
            F.cross_entropy(trained(xb), yb).backward()
            opt.step()
    return model


def on_batch_case(processes: int, part: int | None) -> tuple[nn.Module, list]:
    """train_on_batch on STEPS batches of processes * BATCH samples: each process its own part
    (``part`` = its rank), or one process each whole batch (part None). Returns the model and the
    [loss, accuracy] of each call."""
    x, y = samples(processes * BATCH * STEPS, seed=6)
    from autograd_cnn import keras

    ag.manual_seed(dist.rank() if part is not None else 0)  # different initial weights: rank 0's must win
    model = keras.Sequential([keras.Input(shape=(1, 28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.double()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    results = []
    for step in range(STEPS):
        rows = slice(step * processes * BATCH, (step + 1) * processes * BATCH)
        xb, yb = x[rows], y[rows]
        if part is not None:
            xb, yb = xb[part * BATCH:(part + 1) * BATCH], yb[part * BATCH:(part + 1) * BATCH]
        results.append(model.train_on_batch(xb, yb))
    return model, results


def batchnorm_case() -> tuple[dist.DataParallel, int]:
    """A model with buffers, wrapped: parameters stay equal, running statistics stay each process's own."""
    ag.manual_seed(dist.rank())  # different initial weights everywhere: the wrap must even them out
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    wrapped = dist.DataParallel(model)
    opt = optim.SGD(wrapped.parameters(), lr=0.1)
    x, y = samples(4, seed=10 + dist.rank())  # each process its own samples
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(wrapped(ag.tensor(x)), ag.tensor(y)).backward()
        opt.step()
    return wrapped, len(wrapped.buckets.buckets)


def collectives() -> dict:
    """Each collective on rank-dependent values; the test checks the results."""
    r, k = dist.rank(), dist.world_size()
    out = {}
    for op in ("sum", "mean", "max", "min"):
        out[op] = dist.all_reduce(ag.tensor(np.array([r, -r, 2.0 * r + 1])), op=op).numpy().tolist()
    out["sum_int"] = dist.all_reduce(ag.tensor(np.array([r + 1], dtype=np.int64))).numpy().tolist()
    strided = ag.tensor(np.arange(12.0).reshape(3, 4) * (r + 1)).T  # not contiguous: written back in place
    out["broadcast"] = dist.broadcast(strided, src=k - 1).numpy().tolist()
    out["gather"] = [t.numpy().tolist() for t in dist.all_gather(ag.tensor(np.full((2,), float(r))))]
    dist.barrier()
    try:
        dist.all_reduce(ag.tensor(np.ones((2, 3 + r), dtype=np.float32)))
    except dist.DistributedError as err:
        out["mismatch"] = str(err)
    return out


def shards() -> dict:
    """What each process's sharded DataLoader yields from 10 samples, in order and shuffled
    (the permutation drawn on rank 0: the processes' generators are seeded differently)."""
    ag.manual_seed(100 + dist.rank())
    x = np.arange(10.0)
    out = {}
    for name, kwargs in {"in_order": {"shuffle": False}, "shuffled": {}, "drop_last": {"drop_last": True}}.items():
        loader = data.DataLoader(x, batch_size=2, shard=True, **kwargs)
        out[name] = {"len": len(loader), "rows": [v for xb in loader for v in xb.numpy().tolist()]}
    return out


def twice() -> str:
    model = models.lecture_mlp()
    dist.DataParallel(model)
    try:
        dist.DataParallel(model)
    except dist.DistributedError as err:
        return str(err)
    return ""


def train(out: Path) -> None:
    r, k = dist.rank(), dist.world_size()
    arrays, report = {}, {"rank": r, "size": k, "mpi4py": "mpi4py" in sys.modules,
                          "kernel_threads": ag.get_backend().threads}
    writes = []
    real_save = serialization.save
    serialization.save = lambda obj, path: (writes.append(str(path)), real_save(obj, path))[1]
    report["histories"] = {}
    for case in CASES:
        checkpoint = [nn.ModelCheckpoint(str(out / "checkpoint-{epoch}.npz"), verbose=1)] if case == "cnn-adam-f64" \
            else None
        model, history = fit_case(case, k, BATCH, checkpoint)
        arrays.update({f"{case}/{name}": t.numpy() for name, t in model.state_dict().items()})
        report["histories"][case] = history.history
        if case == "cnn-adam-f64":
            xe, ye = samples(EVAL_SAMPLES, seed=5)
            report["evaluate"] = list(model.evaluate(xe, ye, batch_size=3, verbose=0))
            arrays["predict"] = model.predict(xe, batch_size=3)
    report["checkpoint_writes"] = writes
    arrays.update({f"loop/{name}": t.numpy() for name, t in loop_case(k, wrap=True).state_dict().items()})
    model, report["on_batch"] = on_batch_case(k, r)
    arrays.update({f"on_batch/{i}": w for i, w in enumerate(model.get_weights())})  # layer names differ by process
    wrapped, buckets = batchnorm_case()
    report["bn_keys"] = list(wrapped.state_dict())
    report["bn_buckets"] = buckets
    arrays.update({f"bn/{name}": t.numpy() for name, t in wrapped.state_dict().items()})
    report["collectives"] = collectives()
    report["shards"] = shards()
    report["twice"] = twice()
    np.savez(out / f"rank{r}.npz", **arrays)
    (out / f"rank{r}.json").write_text(json.dumps(report))


class Die(nn.Callback):
    """Rank 1 ends itself at its third step, the way a crashed or killed process ends."""

    def __init__(self, how: str) -> None:
        self.how = how

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if dist.rank() == 1 and batch == 2:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(3)


def die(how: str, out: Path) -> None:
    # MPICH's launcher tells the survivors of a killed process with SIGUSR1, which would end them
    # at once; ignored here, they must find out by themselves, as when a whole machine is lost.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    # The launcher may be gone by the time a survivor reports: each process writes its own file.
    os.dup2(os.open(out / f"rank{dist.rank()}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    x, y = samples(64)
    model = models.lecture_mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=100, batch_size=4, verbose=0, callbacks=[Die(how)])


class Weights(nn.Callback):
    """The weights after each finished step."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.seen = [[p.numpy().copy() for p in self.model.parameters()]]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.seen.append([p.numpy().copy() for p in self.model.parameters()])


def nonfinite(out: Path) -> None:
    """Rank 1's loss is inf at its fifth step (epoch 2, step 1), the others' stays finite: every
    rank must stop there, before the update, with the weights of step 4."""
    calls = []

    def loss(output: ag.Tensor, target: ag.Tensor) -> ag.Tensor:
        calls.append(1)
        value = F.cross_entropy(output, target.astype("int64"))
        return value * np.inf if dist.rank() == 1 and len(calls) == 5 else value
    x, y = samples(dist.world_size() * 16)
    ag.manual_seed(0)
    model = models.lecture_mlp()
    model.compile(optimizer("sgd", model.parameters()), loss)
    weights = Weights()
    try:
        model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[weights])
        message = "no error"
    except ag.AutogradError as err:
        message = f"{type(err).__name__}: {err}"
    same = all(np.array_equal(p.numpy(), w) for p, w in zip(model.parameters(), weights.seen[4]))
    np.savez(out / f"rank{dist.rank()}.npz", *[p.numpy() for p in model.parameters()])
    (out / f"rank{dist.rank()}.json").write_text(json.dumps({"message": message, "same": same}))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(Path(sys.argv[2]))
    elif sys.argv[1] == "nonfinite":
        nonfinite(Path(sys.argv[2]))
    else:
        die(sys.argv[2], Path(sys.argv[3]))
