"""Run every benchmark script in turn; each prints its numbers and appends a dated section
(machine + date) to benchmarks/RESULTS.md.

Usage: python benchmarks/run_all.py [--only render,train_step,sample,recon] [-- extra args for each]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("render", "train_step", "sample", "recon")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset of " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="pass --quick to the benchmarks that have a smaller mode")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; valid: {', '.join(BENCHMARKS)}")
    failures = []
    for name in names:
        script = HERE / f"{name}.py"
        quick = args.quick and "--quick" in script.read_text()
        cmd = [sys.executable, str(script)] + (["--quick"] if quick else [])
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd)
        print(f"== {name}: exit {proc.returncode} after {time.perf_counter() - start:.1f} s", flush=True)
        if proc.returncode != 0:
            failures.append(name)
    if failures:
        print(f"failed benchmarks: {', '.join(failures)}", file=sys.stderr)
        return 1
    print(f"results appended to {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
