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
    for folder in ("include", "dags", "tests", "scripts", "plugins"):
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
        ("include/stages/drift", "from include.stages.training import build_pipeline",
         "Stages are peers", "include.stages.drift -> include.stages.training"),
        ("include/stages/datasets", "from include.stages.evaluation import evaluate_challenger",
         "Stages are peers", "include.stages.datasets -> include.stages.evaluation"),
        # the foundation reaching up into a stage
        ("include/foundation/storage", "from include.stages.ingest import ingest_batch",
         "The stage map", "include.foundation.storage -> include.stages.ingest"),
        # Airflow anywhere in include but orchestration
        ("include/stages/training", "from airflow.sdk import Asset",
         "Only include.orchestration imports Airflow", "include.stages.training -> airflow"),
        # include reaching up into the DAG files or into tests
        ("include/stages/registry", "import dags.train",
         "include never imports", "include.stages.registry -> dags.train"),
        ("include/foundation/storage", "from tests import airflow_helpers",
         "include never imports", "include.foundation.storage -> tests"),
        # the fronts: the plugin runs in the API server, scripts are command lines
        ("plugins/ct_loop_plugin", "from include.stages.drift import check_drift",
         "The plugin runs in the API server", "plugins.ct_loop_plugin -> include.stages.drift"),
        ("scripts/demo", "from tests import factories",
         "The plugin and the scripts are fronts", "scripts.demo -> tests"),
    ],
)  # fmt: skip
def test_a_violation_fails_naming_the_import(project_copy, module, line, contract, offending):
    path = project_copy / f"{module}.py"
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    out = lint_imports(project_copy)
    assert out.returncode != 0
    broken = out.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and offending in broken, out.stdout


def test_a_new_module_must_be_placed_in_a_layer(project_copy):
    (project_copy / "include" / "stages" / "stray.py").write_text('"""Not declared in any layer."""\n')
    out = lint_imports(project_copy)
    assert out.returncode != 0 and "stray" in out.stdout


def test_no_function_in_include_is_longer_than_sixty_lines():
    """A function that needs more is doing two jobs: split it where the jobs meet."""
    import ast

    long = []
    for path in sorted((ROOT / "include").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
