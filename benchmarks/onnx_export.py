"""ONNX: how long exporting the lecture CNN takes, and inference of it: ours, PyTorch's, onnxruntime's.

(a) ``autograd_cnn.onnx.export`` of the lecture CNN (target: under a second), median of repeats.
(b) Inference of the lecture CNN (softmax included) at batch 1 (latency: per-call overhead
    dominates) and batch 1000 (throughput: the convolutions dominate): our eval-mode forward
    under ``no_grad``, PyTorch CPU's under ``torch.no_grad``, and the model we export run by
    onnxruntime (CPU). Each alone in its own process, ``--runs`` processes each, taken in turn;
    the ratio is ours / theirs: lower is better, 1.00x equal. Before timing, the three are
    checked to agree on one batch with the same weights.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/onnx_export.py
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from accuracy import torch_model
from common import (
    add_solo_arguments,
    machine,
    solo_child,
    solo_frameworks,
    solo_in_turn,
    solo_report,
    torch_or_none,
)

import autograd_cnn as ag
from autograd_cnn import models

BATCHES = {"batch1": 1, "batch1000": 1000}
ONNXRUNTIME = "onnxruntime"


def export_times(model: Any, x: np.ndarray, path: Path, repeat: int) -> list[float]:
    """Wall time of each of ``repeat`` exports, after one untimed (imports and first-call costs)."""
    from autograd_cnn.onnx import export

    export(model, x, path)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        export(model, x, path)
        times.append(time.perf_counter() - start)
    return times


def our_model() -> Any:
    """The lecture CNN in eval mode, from seed 0."""
    ag.manual_seed(0)
    return models.lecture_cnn().eval()


def their_model(torch: Any, weights: dict | None = None) -> Any:
    """PyTorch's lecture CNN with a softmax, in eval mode; with our ``weights`` where given."""
    model = torch.nn.Sequential(*torch_model(torch, "cnn"), torch.nn.Softmax(dim=1)).eval()
    if weights is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model


def runner(framework: str, x: np.ndarray, folder: Path) -> Callable[[], Any]:
    """One inference of the batch x by ``framework``: "ours", "torch" or "onnxruntime"."""
    if framework == "torch":
        import torch

        model, batch = their_model(torch), torch.from_numpy(x)

        def run() -> Any:
            with torch.no_grad():
                return model(batch)
        return run
    model = our_model()
    if framework == ONNXRUNTIME:
        import onnxruntime as ort

        from autograd_cnn.onnx import export

        export(model, x[:1], folder / "lecture_cnn.onnx")
        session = ort.InferenceSession(str(folder / "lecture_cnn.onnx"), providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"input": x})
    batch = ag.tensor(x)

    def run() -> Any:
        with ag.no_grad():
            return model(batch)
    return run


def check_agreement(torch: Any, ort: Any, folder: Path) -> None:
    """Ours, PyTorch's (with our weights) and onnxruntime's give the same probabilities."""
    model, x = our_model(), np.random.default_rng(1).random((8, 1, 28, 28), dtype=np.float32)
    with ag.no_grad():
        expected = model(ag.tensor(x)).numpy()
    if torch is not None:
        weights = {k: np.asarray(v) for k, v in model.state_dict().items()}
        with torch.no_grad():
            got = their_model(torch, weights)(torch.from_numpy(x)).numpy()
        assert np.abs(got - expected).max() <= 1e-5, "PyTorch's lecture CNN disagrees with ours"
    from autograd_cnn.onnx import export

    export(model, x[:1], folder / "check.onnx")
    session = ort.InferenceSession(str(folder / "check.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": x})[0] - expected).max() <= 1e-5, \
        "the exported model disagrees with ours"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20,
                        help="exports timed, and inferences of batch 1000 timed in a process (50x that of batch 1)")
    parser.add_argument("--quick", action="store_true", help="4 rounds, one process each: a smoke run, not figures")
    add_solo_arguments(parser, frameworks=("ours", "torch", ONNXRUNTIME))
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.runs = 4, 1
    if args.solo:
        x = np.random.default_rng(0).random((BATCHES[args.case], 1, 28, 28), dtype=np.float32)
        with tempfile.TemporaryDirectory() as folder:
            repeat = args.rounds * (50 if BATCHES[args.case] == 1 else 1)
            solo_child(runner(args.solo, x, Path(folder)), repeat)
        return 0
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        print(f"onnx_export: skipped, {e.name} is not installed (pip install -e '.[dev]')")
        return 0
    print(machine())
    print(f"onnx {onnx.__version__}; onnxruntime {ort.__version__}\n")
    torch = torch_or_none()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lecture_cnn.onnx"
        times = export_times(our_model(), np.zeros((1, 1, 28, 28), np.float32), path, args.rounds)
        print(f"### Exporting the lecture CNN\n\nmedian {statistics.median(times) * 1e3:.1f} ms, "
              f"slowest {max(times) * 1e3:.1f} ms over {len(times)} exports ({path.stat().st_size:,} bytes)\n")
        check_agreement(torch, ort, Path(folder))
    # A name in ``who`` other than "torch" is how the report labels that framework's rows.
    who = {**solo_frameworks(torch is not None, malloc_kept=False),
           "onnxruntime CPU in PyTorch's columns": (ONNXRUNTIME, {})}
    results = solo_in_turn(__file__, list(BATCHES), args.runs, who, ["--rounds", str(args.rounds)])
    solo_report(results, {case: f"lecture CNN inference, batch {n}" for case, n in BATCHES.items()},
                "Inference of the lecture CNN (float32, CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
