"""The config checks that need more than the YAML: scikit-learn's verdict on the estimator and
its params (without importing scikit-learn where DAG files are parsed), and cron arithmetic.
``include.foundation.config`` calls them while it validates a pipeline file."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from include.foundation.errors import PermanentError


class ModelCheckFailed(PermanentError):
    """scikit-learn could not be asked about the estimator (a broken install, not the config)."""


ESTIMATOR_PATH = re.compile(r"^sklearn(\.[a-z_][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$")


def estimator_is_exported(path: str) -> bool:
    """Whether ``sklearn.<module>.<Class>`` names a class that module defines or re-exports.

    Read from the module's source (not imported): configs are loaded while DAG files parse, and
    must not pull in scikit-learn there. ``training.load_estimator`` imports the class and checks
    it is a classifier before anything is instantiated.
    """
    module, _, name = path.rpartition(".")
    root = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if root is None or not root.submodule_search_locations:
        return False
    base = Path(next(iter(root.submodule_search_locations))).joinpath(*module.split(".")[1:])
    source = next((p for p in (base / "__init__.py", base.with_suffix(".py")) if p.is_file()), None)
    if source is None:
        return False
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update(a.asname or a.name.rpartition(".")[2] for a in node.names)
    return name in names


def cron_spacing_days(expr: str, start: date, ticks: int = 60) -> tuple[float, float]:
    """The shortest and longest gap, in days, between consecutive ticks in the year after ``start``."""
    from datetime import datetime

    from croniter import croniter

    it = croniter(expr, datetime(start.year, start.month, start.day), max_years_between_matches=1)
    times = [it.get_next(datetime) for _ in range(ticks)]
    gaps = [(b - a).total_seconds() / 86400 for a, b in zip(times, times[1:], strict=False)]
    return min(gaps), max(gaps)


def fires_within_a_year(expr: str, start: date) -> bool:
    """Whether the cron expression has a tick in the year after ``start``."""
    from datetime import datetime, timedelta

    from croniter import CroniterBadDateError, croniter

    begin = datetime(start.year, start.month, start.day)
    try:
        tick = croniter(expr, begin, max_years_between_matches=1).get_next(datetime)
    except CroniterBadDateError:
        return False
    return tick - begin <= timedelta(days=366)


def model_problems(estimator: str, params: dict[str, Any], kind: str = "binary") -> list[str]:
    """scikit-learn's own verdict on ``model.estimator`` with ``model.params``, without fitting:
    a classifier class for a binary or multiclass target (with ``predict_proba``: every
    classification metric, the bootstrap and the performance floor score probabilities), a
    regressor class for a regression target, and parameters its parameter validation accepts.
    Imports scikit-learn: :func:`check_model` keeps that out of DAG parsing."""
    import importlib
    import inspect

    from sklearn.base import ClassifierMixin, RegressorMixin

    module, _, name = estimator.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        return [f"model.estimator: cannot import {estimator!r} ({exc})"]
    wanted, example = (
        (RegressorMixin, "sklearn.ensemble.HistGradientBoostingRegressor")
        if kind == "regression"
        else (ClassifierMixin, "sklearn.ensemble.HistGradientBoostingClassifier")
    )
    if not (inspect.isclass(cls) and issubclass(cls, wanted)):
        what = "regressor" if kind == "regression" else "classifier"
        return [f"model.estimator: {estimator} is not a scikit-learn {what}; target.kind {kind} needs one "
                f"(e.g. {example})"]  # fmt: skip
    try:
        est = cls().set_params(**params)
        est._validate_params()  # scikit-learn's own parameter constraints, checked without a fit
    except (TypeError, ValueError) as exc:
        return [f"model.params: {exc}"]
    if kind != "regression" and not hasattr(est, "predict_proba"):
        return [
            f"model.estimator: {estimator} (with these model.params) has no predict_proba; the promotion "
            "metrics, the bootstrap and the performance floor need class probabilities (e.g. "
            "LogisticRegression, or SGDClassifier with loss: log_loss)"
        ]
    return []


def check_model(estimator: str, params: dict[str, Any], kind: str = "binary") -> list[str]:
    """:func:`model_problems`, cheap where it must be: in a process that already imported
    scikit-learn it runs in place; elsewhere (DAG parsing, which must not import it) the verdict
    comes from a cache under ``CT_HOME/cache`` or, the first time, from a child process."""
    import subprocess
    import sys
    from importlib.metadata import version

    if "sklearn" in sys.modules:
        return model_problems(estimator, params, kind)
    import os
    import tempfile

    from include.foundation.settings import cache_dir

    spec = {"estimator": estimator, "params": params, "kind": kind, "sklearn": version("scikit-learn")}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]
    cached = cache_dir() / "model_checks" / f"{key}.json"
    try:
        return list(json.loads(cached.read_text())["problems"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        out = subprocess.run(
            [sys.executable, "-m", "include.foundation.checks", "check-model"],
            input=json.dumps(spec, default=str), capture_output=True, text=True, timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelCheckFailed(f"scikit-learn could not be asked about {estimator} ({exc})") from exc
    if out.returncode != 0:
        raise ModelCheckFailed(
            f"scikit-learn could not be asked about {estimator}: {out.stderr.strip()[-2000:]}"
        )
    problems = list(json.loads(out.stdout)["problems"])
    try:  # a cache that cannot be written (a read-only home) only costs the next parse the child process
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")  # 0600; renamed whole into place
        with os.fdopen(fd, "w") as fh:
            json.dump({**spec, "problems": problems}, fh, default=str)
        os.replace(tmp, cached)
    except OSError:
        pass
    return problems


if __name__ == "__main__":  # python -m include.foundation.checks check-model < spec.json (see check_model)
    import sys

    if sys.argv[1:] != ["check-model"]:
        sys.exit("usage: python -m include.foundation.checks check-model < {estimator, params}")
    _spec = json.load(sys.stdin)
    json.dump(
        {"problems": model_problems(_spec["estimator"], _spec["params"], _spec.get("kind", "binary"))},
        sys.stdout,
    )
