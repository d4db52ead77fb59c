"""Benchmark: wall time to import each DAG file in a fresh interpreter (prints figures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = (
    "import time,importlib.util,sys;import airflow.sdk;t=time.perf_counter();"
    "s=importlib.util.spec_from_file_location('d',sys.argv[1]);m=importlib.util.module_from_spec(s);"
    "s.loader.exec_module(m);print(f'{time.perf_counter()-t:.3f}')"
)


def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"{'DAG file':<28}{'parse (s, after airflow.sdk), best of 3':>44}")
    for f in sorted((ROOT / "dags").glob("*.py")):
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", CODE, str(f)], env=env, capture_output=True, text=True, check=True
                ).stdout.split()[-1]
            )
            for _ in range(3)
        ]
        print(f"{f.name:<28}{min(runs):>44.3f}")


if __name__ == "__main__":
    main()
