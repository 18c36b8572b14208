"""ONNX: how long exporting the lecture CNN takes, and onnxruntime's inference against ours.

(a) ``autograd_cnn.onnx.export`` of the lecture CNN (target: under a second), median of repeats.
(b) The exported model in onnxruntime (CPU) against our own eval-mode forward under
    ``no_grad``, at batch 1 (latency: per-call overhead dominates) and batch 1000 (throughput:
    the convolutions dominate). The ratio is ours / onnxruntime's: lower is better, 1.00x equal.

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
from common import machine, paired_median_times, report

import autograd_cnn as ag
from autograd_cnn import models


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


def ours(model: Any, x: np.ndarray) -> Callable[[], Any]:
    batch = ag.tensor(x)

    def run() -> Any:
        with ag.no_grad():
            return model(batch)
    return run


def onnxruntime_run(session: Any, x: np.ndarray) -> Callable[[], Any]:
    def run() -> Any:
        return session.run(None, {"input": x})
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed runs of each case (median taken)")
    parser.add_argument("--quick", action="store_true", help="4 rounds: a smoke run, not figures to report")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 4
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        print(f"onnx_export: skipped, {e.name} is not installed (pip install -e '.[dev]')")
        return 0
    print(machine())
    print(f"onnx {onnx.__version__}; onnxruntime {ort.__version__}\n")

    ag.manual_seed(0)
    model = models.lecture_cnn().eval()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lecture_cnn.onnx"
        times = export_times(model, np.zeros((1, 1, 28, 28), np.float32), path, args.rounds)
        print(f"### Exporting the lecture CNN\n\nmedian {statistics.median(times) * 1e3:.1f} ms, "
              f"slowest {max(times) * 1e3:.1f} ms over {len(times)} exports ({path.stat().st_size:,} bytes)\n")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rows = []
        for batch, repeat in ((1, 50 * args.rounds), (1000, args.rounds)):
            x = rng.random((batch, 1, 28, 28), dtype=np.float32)
            expected = session.run(None, {"input": x})[0]
            got = ours(model, x)().numpy()
            assert np.abs(got - expected).max() <= 1e-5, "the exported model disagrees with ours"
            mine, theirs = paired_median_times(ours(model, x), onnxruntime_run(session, x), repeat=repeat)
            rows.append((f"lecture CNN inference, batch {batch}", mine, theirs))
    report(rows, "Inference: autograd_cnn against onnxruntime (float32, CPU)", theirs="onnxruntime")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
