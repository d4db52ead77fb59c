"""DAG files must parse without pulling in heavy libraries (they are re-parsed constantly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ["pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently", "pyarrow", "scipy"]

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("dagfile", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
from airflow.sdk import DAG
dags = [v.dag_id for v in vars(mod).values() if isinstance(v, DAG)]
print(json.dumps({"dags": dags, "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_no_heavy_library(dag_file):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if dag_file.name == "pipeline_config.py":  # reports bad pipeline files; builds no DAG
        assert result["dags"] == []
    else:
        assert result["dags"], f"{dag_file.name} defines no DAG"
    assert result["heavy"] == [], f"{dag_file.name} imports {result['heavy']} at parse time"
