"""Run every benchmark script in this folder in turn (``make bench``, ``autograd-cnn bench``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run_all.py [--only NAME ...] [--quick]

Each script runs in its own process (one does not warm the caches of the next) with this
interpreter; ``--quick`` is passed on to the scripts that accept it. Exits non-zero when
any script fails, after running the rest.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"common.py", "run_all.py", "__init__.py"}


def scripts(only: list[str] | None = None) -> list[Path]:
    """The benchmark scripts, by name; ``only`` keeps those whose stem is listed."""
    found = sorted(p for p in HERE.glob("*.py") if p.name not in NOT_BENCHMARKS)
    if only:
        unknown = set(only) - {p.stem for p in found}
        if unknown:
            raise SystemExit(f"run_all: no benchmark named {', '.join(sorted(unknown))}; "
                             f"there are: {', '.join(p.stem for p in found)}")
        found = [p for p in found if p.stem in only]
    return found


def accepts(script: Path, option: str) -> bool:
    """Whether the script declares ``option`` (read from its source: nothing is imported)."""
    return f'"{option}"' in script.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts (names without .py)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the scripts that take it")
    args = parser.parse_args(argv)
    failed = []
    for script in scripts(args.only):
        command = [sys.executable, str(script)]
        if args.quick and accepts(script, "--quick"):
            command.append("--quick")
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call(command, cwd=HERE.parent)
        print(f"=== {script.name}: {'ok' if code == 0 else f'FAILED (exit {code})'} "
              f"in {time.perf_counter() - start:.0f} s ===", flush=True)
        if code != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
