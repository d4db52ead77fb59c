"""Benchmark: drift check wall time and peak memory at 100k and 1M rows x 20 columns.

Each case runs in a fresh subprocess so peak RSS is its own. Prints a table; not a test.
Usage: python scripts/bench_drift.py [--rows 100000 1000000] [--max-rows 50000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASE = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
from include.config import DriftSpec
from include.drift import drift_report
rows, max_rows = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
cols = [f"x{i}" for i in range(20)]
ref = pd.DataFrame(rng.normal(size=(rows, 20)), columns=cols)
cur = pd.DataFrame(rng.normal(size=(rows, 20)), columns=cols)
cur[["x0", "x1"]] += 0.5   # two drifted columns
spec = DriftSpec(max_rows=max_rows)
t = time.perf_counter()
_, s = drift_report(ref, cur, cols, [], spec)
wall = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": wall, "peak_mb": peak_mb, "drifted": s["drifted_columns"], "used": s["current_used"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--max-rows", type=int, default=50_000, help="sample size of the sampled variant")
    args = ap.parse_args()
    print(f"{'rows/side':>10} {'mode':<10} {'rows used':>10} {'report s':>9} {'peak RSS MB':>12}  drifted")
    for rows in args.rows:
        for mode, max_rows in (("sampled", args.max_rows), ("unsampled", rows)):
            out = subprocess.run(
                [sys.executable, "-c", CASE, str(rows), str(max_rows)],
                capture_output=True, text=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{rows:>10} {mode:<10} {r['used']:>10} {r['wall']:>9.1f} {r['peak_mb']:>12.0f}  {','.join(r['drifted'])}"
            )


if __name__ == "__main__":
    main()
