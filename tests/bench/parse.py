"""Benchmark: what each DAG file costs to parse beyond Airflow's own imports (prints figures).

Each file is imported in a fresh interpreter after Airflow's modules that any DAG file needs
(``airflow.sdk``, the TaskFlow decorators' operators, TriggerDagRunOperator) and after a first
parse of the same file has warmed the pipelines scan's model-check cache, as the DAG processor's
repeated parses are. Target: under 50 ms per file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_OWN = (
    "airflow.sdk",
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.trigger_dagrun",
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.decorators.branch_python",
    "airflow.providers.standard.decorators.short_circuit",
)
CODE = (
    "import time,importlib,importlib.util,sys\n"
    f"for m in {AIRFLOW_OWN!r}: importlib.import_module(m)\n"
    "t=time.perf_counter()\n"
    "s=importlib.util.spec_from_file_location('d',sys.argv[1]);m=importlib.util.module_from_spec(s)\n"
    "s.loader.exec_module(m);print(f'{time.perf_counter()-t:.3f}')"
)
TARGET = 0.050


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a deployment runs
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "include", "dags"], cwd=ROOT, env=env, check=True
    )
    print(
        f"{'DAG file':<28}{'parse (s, beyond Airflow s own imports), best of 3':>52}   target < {TARGET:.3f}"
    )
    for f in sorted((ROOT / "dags").glob("*.py")):
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", CODE, str(f)], env=env, capture_output=True, text=True, check=True
                ).stdout.split()[-1]
            )
            for _ in range(3)
        ]
        best = min(runs)
        print(f"{f.name:<28}{best:>52.3f}   {'ok' if best < TARGET else 'OVER'}")


if __name__ == "__main__":
    main()
