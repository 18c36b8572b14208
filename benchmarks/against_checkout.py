"""This checkout against another (an older commit, checked out beside it): the 10,000-tiny-op
chain and the lecture CNN's training step, each timed in processes of their own, taken in turn.

    git clone --quiet . /tmp/before && git -C /tmp/before checkout --quiet <commit>
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/against_checkout.py /tmp/before

Both sides run the timing code of this checkout's benchmarks (``overhead.chain_ours``,
``train_step.step_ours``); only the package imported differs (the child's PYTHONPATH).
The ratio is this checkout's median over the other's: below 1 is faster.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics

import numpy as np
from common import add_solo_arguments, machine, solo_child, solo_in_turn

HERE = pathlib.Path(__file__).resolve().parent
CASES = ("chain", "lecture-cnn")


def child(case: str) -> None:
    if case == "chain":
        import overhead

        rng = np.random.default_rng(0)
        step = overhead.chain_ours(rng.standard_normal(16).astype(np.float32),
                                   rng.standard_normal(16).astype(np.float32))
        solo_child(step, repeat=overhead.CHAINS, warmup=1)
    else:
        import train_step

        step, sync = train_step.step_ours("numpy", 128)
        solo_child(step, repeat=20, warmup=3, sync=sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", nargs="?", help="the root of the other checkout")
    add_solo_arguments(parser, runs=5, frameworks=("ours",))
    args = parser.parse_args()
    if args.solo:
        return child(args.case)
    if not args.other:
        raise SystemExit("against_checkout.py: give the root of the other checkout")
    here, other = str(HERE.parent), str(pathlib.Path(args.other).resolve())
    who = {"this": ("ours", {"PYTHONPATH": here}), "other": ("ours", {"PYTHONPATH": other})}
    results = solo_in_turn(__file__, CASES, args.runs, who)
    print(machine())
    print(f"| case | this checkout (ms) | its runs | {os.path.basename(other)} (ms) | its runs | this / other |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for case in CASES:
        mine, theirs = results[(case, "this")], results[(case, "other")]
        runs = [f"{statistics.median(t) * 1e3:.2f} | {min(t) * 1e3:.2f} to {max(t) * 1e3:.2f}" for t in (mine, theirs)]
        print(f"| {case} | {runs[0]} | {runs[1]} | {statistics.median(mine) / statistics.median(theirs):.3f} |")
    print(f"\n{args.runs} processes of each, taken in turn; a process's figure is the median of its timed calls.")

if __name__ == "__main__":
    main()
