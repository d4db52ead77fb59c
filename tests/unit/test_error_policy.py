"""One error policy: what a retry cannot fix is a PermanentError, found by walking the code.

``include/`` handles the user's input (configs, run params, data files, registry state). A
``raise`` of a plain built-in exception there would be retried by Airflow as if transient and
would name no cause the user can act on, so it is refused here, wherever it is added.
"""

from __future__ import annotations

import ast
import builtins
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.foundation.errors import NothingToDo, PermanentError

ROOT = Path(__file__).resolve().parents[2]
BUILTIN_ERRORS = {
    name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)
}
# pydantic turns a ValueError raised in a model's validators into a ValidationError, which
# load_pipeline reports as a ConfigError (permanent) naming the file and key.
PYDANTIC_BASES = {"BaseModel", "_Strict"}


def builtin_raises(source: str) -> list[tuple[int, str]]:
    """``(line, exception)`` of each ``raise <BuiltinError>(...)`` outside pydantic models."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_model: bool) -> None:
        if isinstance(node, ast.ClassDef):
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            in_model = in_model or bool(bases & PYDANTIC_BASES)
        if isinstance(node, ast.Raise) and node.exc is not None and not in_model:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
                found.append((node.lineno, exc.id))
        for child in ast.iter_child_nodes(node):
            visit(child, in_model)

    visit(ast.parse(source), False)
    return found


INCLUDE = sorted((ROOT / "include").rglob("*.py"))


@pytest.mark.parametrize("module", INCLUDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_stage_code_raises_no_plain_builtin_error(module):
    raises = builtin_raises(module.read_text())
    assert raises == [], (
        f"{module.relative_to(ROOT)} raises built-in exceptions {raises}: raise a PermanentError subclass "
        "(include/foundation/errors.py) that names what was wrong, or a documented transient error"
    )


@pytest.mark.parametrize("module", INCLUDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_project_error_is_permanent_or_says_why_it_is_retried(module):
    import importlib
    import inspect

    name = ".".join(module.relative_to(ROOT).with_suffix("").parts)
    mod = importlib.import_module(name)
    for cls_name, cls in inspect.getmembers(mod, inspect.isclass):
        if cls.__module__ != name or not issubclass(cls, BaseException):
            continue
        assert issubclass(cls, PermanentError | NothingToDo) or "retried" in (cls.__doc__ or "").lower(), (
            f"{name}.{cls_name} is neither a PermanentError, nor a NothingToDo (a skip), nor documented as retried"
        )


def test_the_walker_finds_what_it_must():
    src = (
        "class M(_Strict):\n    def v(self):\n        raise ValueError('pydantic reports it')\n"
        "def f(x):\n    if x:\n        raise ValueError('bad')\n    raise KeyError(x)\n"
        "def g():\n    try:\n        pass\n    except OSError:\n        raise\n    raise Custom('ok')\n"
    )
    assert builtin_raises(src) == [(6, "ValueError"), (7, "KeyError")]


def test_a_missing_interval_is_permanent():
    from include.stages.ingest import resolve_interval

    with pytest.raises(PermanentError, match="no data interval"):
        resolve_interval(None, None)
    with pytest.raises(PermanentError, match="not a date"):
        resolve_interval(None, None, "next tuesday")


def test_a_malformed_as_of_is_permanent():
    from include.stages.datasets import parse_as_of

    with pytest.raises(PermanentError, match="as_of 'June' is not an ISO date"):
        parse_as_of("June")
    assert parse_as_of("2013-06-04") == datetime(2013, 6, 4, tzinfo=UTC)


def test_already_champion_by_another_decision_is_permanent():
    from include.stages.evaluation import champion_to_beat

    mv = SimpleNamespace(version="3", tags={"decision.outcome": "rolled back"})
    client = SimpleNamespace(
        get_model_version_by_alias=lambda name, alias: mv,
        get_registered_model=lambda name: SimpleNamespace(tags={}),
        get_experiment_by_name=lambda name: None,
    )
    with pytest.raises(PermanentError, match="v3 is already champion"):
        champion_to_beat(client, "m", "3")


def test_a_missing_batch_is_permanent(flights_cfg, tmp_path):
    from include.stages.validation import validate_batch

    with pytest.raises(PermanentError, match="not found: run the ingest task first"):
        validate_batch(flights_cfg, tmp_path, "20130101T0000Z_20130108T0000Z")
