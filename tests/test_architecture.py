"""The house rules in pyproject.toml ([tool.importlinter]) hold, and a broken rule fails loudly.

`make lint` runs the same contracts; these tests prove they can fail, naming the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for folder in ("include", "dags", "tests"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_contracts_hold_on_this_tree():
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    "module, line, contract, offending",
    [
        # a stage importing another stage (drift scored with training's framing)
        (
            "drift",
            "from include.training import build_pipeline",
            "Stages are peers",
            "include.drift -> include.training",
        ),
        # the foundation importing a stage
        (
            "datasets",
            "from include.evaluation import decide",
            "Stages are peers",
            "include.datasets -> include.evaluation",
        ),
        # Airflow anywhere in include but dag_support
        (
            "training",
            "from airflow.sdk import Asset",
            "Only dag_support and notifications import Airflow",
            "include.training -> airflow",
        ),
        # include reaching up into the DAG files or into tests
        (
            "registry",
            "import dags.train",
            "include never imports the DAG files",
            "include.registry -> dags.train",
        ),
        (
            "storage",
            "from tests import airflow_helpers",
            "include imports no test code",
            "include.storage -> tests",
        ),
    ],
)
def test_a_violation_fails_naming_the_import(project_copy, module, line, contract, offending):
    path = project_copy / "include" / f"{module}.py"
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    out = lint_imports(project_copy)
    assert out.returncode != 0
    broken = out.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and offending in broken, out.stdout


def test_a_new_module_must_be_placed_in_a_layer(project_copy):
    (project_copy / "include" / "stray.py").write_text('"""Not declared in any layer."""\n')
    out = lint_imports(project_copy)
    assert out.returncode != 0 and "stray" in out.stdout
