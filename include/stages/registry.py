"""Model Registry operations: champion lookup, loading, compare-and-set promotion, rejection, rollback.

Aliases and tags only (registry *stages* are deprecated). Every decision is written to the
version's tags (``decision.*``, built by :func:`decision_record`) so the registry itself
explains why a model is champion.

Rollback from a shell::

    python -m include.stages.registry rollback --pipeline flights_delay --reason "bad release"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from include.foundation import metrics, tracking
from include.foundation.config import load_pipelines
from include.foundation.errors import PermanentError
from include.foundation.logging_config import configure_library_logging
from include.foundation.payloads import Promotion, Rejection
from include.foundation.redaction import redact, redact_value
from include.foundation.settings import Settings
from include.foundation.tracking import Role, Tag

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


class PromotionConflict(PermanentError):
    """The champion alias moved between evaluation and promotion: the decision is stale."""


class RollbackError(PermanentError):
    """There is no previous champion to roll back to."""


def get_champion(client, model_name: str):
    """The champion ModelVersion, or None when the model or the alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def model_uri(model_name: str, version: str | int) -> str:
    return f"models:/{model_name}/{version}"


TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.")


class UnsafeModel(PermanentError):
    """A registered model would be loaded by running a pickle or trusting non-library types."""


def load_model(uri: str):
    """Load a registered model once, as MLflow pyfunc (``mlflow.models.evaluate`` takes it as is;
    :func:`include.foundation.metrics.positive_scores` unwraps the scikit-learn model inside).

    Only skops-serialised scikit-learn models whose trusted types are library types are loaded:
    a pickle (or a tampered trusted-type list) in the registry is refused, never executed.
    """
    import mlflow.pyfunc
    from mlflow.models import get_model_info

    flavor = get_model_info(uri).flavors.get("sklearn") or {}
    trusted = flavor.get("skops_trusted_types") or []
    if flavor.get("serialization_format") != "skops" or not all(
        t.startswith(TRUSTED_TYPE_PREFIXES) for t in trusted
    ):
        raise UnsafeModel(
            f"{uri} is stored as {flavor.get('serialization_format') or 'not a scikit-learn model'} with trusted "
            f"types {trusted}; only skops models of scikit-learn/NumPy/SciPy types are loaded"
        )
    return mlflow.pyfunc.load_model(uri)


def signature_inputs(model, fallback: list[str], fallback_numeric: list[str]) -> tuple[list[str], list[str]]:
    """``(columns, numeric columns)`` a loaded model was trained on, from its MLflow signature.

    A champion is scored with its own inputs, so a feature added to or dropped from the config
    later does not break its evaluation. Models without a signature use the fallback.
    """
    schema = model.metadata.get_input_schema() if getattr(model, "metadata", None) else None
    if schema is None or not schema.has_input_names():
        return fallback, fallback_numeric
    numeric_types = {"double", "float", "long", "integer"}
    names, types = schema.input_names(), schema.input_types()
    return names, [
        n for n, t in zip(names, types, strict=True) if getattr(t, "name", str(t)) in numeric_types
    ]


VERSION_TAGS = (Tag.PIPELINE, Tag.ROLE, Tag.AIRFLOW_RUN_ID, Tag.run("reason"), Tag.REFIT_OF)
"""Tags a version gets at registration; the rest (lineage, Airflow task, config digest) stay on its run."""


def with_lineage(client, mv) -> SimpleNamespace:
    """``mv`` with its training run's tags under its own: the lineage (``data.*``) lives on the run.

    Versions registered before lineage moved to the run carry it themselves; theirs wins.
    """
    run_tags = client.get_run(mv.run_id).data.tags if getattr(mv, "run_id", None) else {}
    return SimpleNamespace(
        version=mv.version, run_id=getattr(mv, "run_id", None), tags={**run_tags, **mv.tags}
    )


def judged_version(client, model_name: str, mv):
    """The version the gate judged behind ``mv``: the one it was refit from
    (``training.refit_on_holdout``), or ``mv`` itself. Comparisons, holdout metrics and
    calibration read it: the refit has seen its holdout."""
    of = mv.tags.get(Tag.REFIT_OF)
    return client.get_model_version(model_name, of) if of else mv


def refit_of(client, model_name: str, judged: str):
    """The refit version registered for the judged version ``judged``, if any (idempotent retries)."""
    for mv in client.search_model_versions(f"name = '{model_name}'"):
        if mv.tags.get(Tag.REFIT_OF) == str(judged):
            return client.get_model_version(model_name, mv.version)
    return None


def find_registered_version(client, model_name: str, airflow_run_id: str | None):
    """The version an earlier try of this Airflow run registered, if any (idempotent retries)."""
    if not airflow_run_id:
        return None
    for mv in client.search_model_versions(f"name = '{model_name}'"):
        if mv.tags.get(Tag.AIRFLOW_RUN_ID) == airflow_run_id and mv.tags.get(Tag.ROLE) == Role.TRAINED:
            return client.get_model_version(model_name, mv.version)
    return None


def decision_record(
    evaluation: dict[str, Any], run_reason: str, airflow_run_id: str, run_link: str | None = None
) -> dict[str, Any]:
    """The full decision: the evaluation, why the training ran, and the Airflow run that decided
    (``run_link``: its page in the Airflow UI)."""
    return {**evaluation, "run_reason": run_reason, "airflow_run_id": airflow_run_id, "run_link": run_link}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


DECISION_ARTIFACT = "decision/record.json"  # on the version's run: the full record behind the tags


def decision_tags(record: dict[str, Any]) -> dict[str, str]:
    """The few ``decision.*`` tags a person reads on the version page (the rest is in the artifact)."""
    metric, value, champ = record.get("primary_metric"), record.get("challenger"), record.get("champion")
    if metric and value is not None:
        summary = f"{metric} {value:.4f}"
        if champ is not None:  # the gain in the metric's better direction, as the rule's reason says it
            gain = record.get("difference")
            gain = metrics.orientation(metric) * (value - champ) if gain is None else gain
            summary += f" vs {champ:.4f} (v{record.get('champion_version')}, gain {gain:+.4f})"
        else:
            summary += " (no champion to compare)"
    else:
        summary = None
    tags = {
        Tag.DECISION_OUTCOME: record["outcome"],
        Tag.decision("metric"): summary,
        Tag.DECISION_REASON: str(record.get("reason") or "")[:500] or None,
        Tag.decision("run"): record.get("run_link") or record.get("airflow_run_id"),
        Tag.decision("approval"): (record.get("approval") or {}).get("summary"),
        Tag.DECISION_PREVIOUS_CHAMPION: record.get("previous_champion"),
        Tag.decision("at"): record.get("promoted_at") or record.get("rejected_at"),
    }
    return {k: str(v) for k, v in tags.items() if v is not None}


def decision_description(record: dict[str, Any]) -> str:
    """The decision in full, as the version's description: MLflow's version page shows it whole,
    where the version list cuts ``decision.*`` tag values short."""
    tags = decision_tags(record)
    lines = [
        f"**{tags[Tag.DECISION_OUTCOME]}**"
        + (f": {tags[Tag.decision('metric')]}" if Tag.decision("metric") in tags else "")
    ]
    reason = str(record.get("reason") or "")[:4000]
    for label, value in (("Why", reason), ("Approval", tags.get(Tag.decision("approval"))),
                         ("Previous champion", tags.get(Tag.DECISION_PREVIOUS_CHAMPION)),
                         ("Decided by", tags.get(Tag.decision("run"))), ("At", tags.get(Tag.decision("at")))):  # fmt: skip
        if value:
            lines.append(f"{label}: {value}")
    return "\n\n".join(lines)


def describe_judged(client, model_name: str, judged: str, served: str, record: dict[str, Any]) -> None:
    """The judged version's description once its refit serves: where the decision is recorded
    (the refit's ``decision.*`` tags), and the decision in full."""
    text = decision_description({**redact_value(record), "outcome": "promoted"})
    client.update_model_version(model_name, judged, description=(
        f"Accepted by the gate; serves as its refit v{served} (trained on this version's training set plus its "
        f"holdout), whose tags record the decision.\n\n{text}"))  # fmt: skip


def _write_decision(client, model_name: str, version: str, record: dict[str, Any]) -> None:
    """Tags first (what people and rollback read), the decision in full as the version's
    description, then the full record as the run's artifact."""
    record = redact_value(record)
    for k, v in decision_tags(record).items():
        client.set_model_version_tag(model_name, version, k, v)
    client.update_model_version(model_name, version, description=decision_description(record))
    run_id = client.get_model_version(model_name, version).run_id
    if run_id:
        client.log_dict(run_id, record, DECISION_ARTIFACT)


MOVE_PREFIX = ".ct-loop"  # ticket experiments: hidden (deleted) as soon as they are made
HINT_TAG = "ct_loop.champion_moves"
APPROVAL_TAG = "approval.answer"  # on a version: the person's answer, as the approval task read it
REFUSED_TAG = "decision.promotion_refused"  # on a version: a promotion attempt its evidence refused


class PromotionRefused(PermanentError):
    """``promote`` was reached, but the durable evidence does not allow this version to be champion."""


class RejectionRefused(PermanentError):
    """``reject`` was reached, but the evidence says the version was allowed: nothing is recorded."""


def _ticket_name(model_name: str, n: int) -> str:
    return f"{MOVE_PREFIX}/{model_name}/champion-move/{n:08d}"


def _applied_name(model_name: str, n: int) -> str:
    return f"{_ticket_name(model_name, n)}/applied"


def _ticket(client, model_name: str, n: int):
    return client.get_experiment_by_name(_ticket_name(model_name, n)) if n > 0 else None


def _latest_move(client, model_name: str) -> tuple[int, Any]:
    """The number of the last claimed move of ``champion`` and its ticket (0, None: none yet)."""
    from mlflow.exceptions import MlflowException

    try:
        n = int(client.get_registered_model(model_name).tags.get(HINT_TAG, 0))
    except (MlflowException, ValueError):
        n = 0
    while _ticket(client, model_name, n + 1) is not None:  # the hint may lag: probe forward
        n += 1
    return n, _ticket(client, model_name, n)


def champion_state(client, model_name: str) -> tuple[int, str | None]:
    """``(generation, champion version)``: the number of the last claimed move of ``champion``
    (read first) and where the alias points. A decision records both; a move made from them is
    refused once either has changed (:func:`move_champion`)."""
    generation, _ = _latest_move(client, model_name)
    champ = get_champion(client, model_name)
    return generation, None if champ is None else str(champ.version)


def generation_before_own_move(client, model_name: str, version: str) -> int:
    """The generation a promotion to ``version`` was decided at, when the last move is that
    promotion (an evaluation cleared after its own promote judges again from there)."""
    n, last = _latest_move(client, model_name)
    return n - 1 if last is not None and last.tags.get("to") == str(version) else n


def _describe(ticket, n: int) -> str:
    t = ticket.tags if ticket is not None else {}
    return (f"move {n} ({t.get('kind', 'move')} v{t.get('from')} -> v{t.get('to')} by "
            f"{t.get('claimant', '?')} at {t.get('at', '?')})")  # fmt: skip


def _create_once(client, name: str, tags: dict[str, str] | None = None) -> bool:
    """Create (and hide) the experiment ``name``; False if it already exists. The tracking store
    refuses a second experiment of one name, deleted or not, on SQLite and PostgreSQL alike."""
    from mlflow.exceptions import MlflowException

    try:
        made = client.create_experiment(name, tags=tags)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return False
    client.delete_experiment(made)  # kept (names stay unique), hidden from the experiment list
    return True


def _claim(client, model_name: str, n: int, move: dict[str, str]) -> bool:
    """Claim move number ``n``: True for whoever creates its ticket first (the store's unique
    experiment name decides, across processes and hosts), or if this claimant already did."""
    if _create_once(client, _ticket_name(model_name, n), move):
        return True
    held = _ticket(client, model_name, n)
    return held is not None and held.tags.get("claimant") == move["claimant"]


def _settle(client, model_name: str, n: int) -> None:
    """After writing the alias for move ``n``: a later claimed move wins whatever order the alias
    writes landed in. Its target is written again and this move reports it was superseded."""
    latest, ticket = _latest_move(client, model_name)
    if latest > n:
        client.set_registered_model_alias(model_name, CHAMPION, ticket.tags["to"])
        client.set_registered_model_tag(model_name, HINT_TAG, str(latest))
        raise PromotionConflict(
            f"{model_name}: move {n} was superseded by {_describe(ticket, latest)} while it was being "
            f"applied; champion is v{ticket.tags['to']}"
        )
    client.set_registered_model_tag(model_name, HINT_TAG, str(n))


def _retry_own_move(client, model_name: str, version: str, expected, target: int, kind: str) -> bool:
    """A retry (or clear) of the move that claimed number ``target``: finish it only while nothing
    has moved the champion since; never re-apply it over a later move or a hand move."""
    n, last = _latest_move(client, model_name)
    if n > target:
        raise PromotionConflict(
            f"{model_name}: this {kind} to v{version} was move {target}; since then {_describe(last, n)}. "
            "Not re-applied: a later move (a rollback, a hand move recorded by the loop, another promotion) "
            "stands until a new evaluation promotes something."
        )
    applied = client.get_experiment_by_name(_applied_name(model_name, target)) is not None
    current = get_champion(client, model_name)
    current_v = None if current is None else str(current.version)
    if current_v == version:
        _create_once(client, _applied_name(model_name, target))
        _settle(client, model_name, target)
        log.info("%s v%s is already champion through this %s (move %d): no change", model_name, version,
                 kind, target)  # fmt: skip
        return False
    if not applied and current_v == expected:  # claimed, but the alias write never came: finish it
        client.set_registered_model_alias(model_name, CHAMPION, version)
        _create_once(client, _applied_name(model_name, target))
        _settle(client, model_name, target)
        return True
    raise PromotionConflict(
        f"{model_name}: champion is v{current_v}, moved outside the loop (in the MLflow UI or by a script) after "
        f"this {kind} to v{version} was {'applied' if applied else 'claimed'} as move {target}. Not re-applied: "
        "the hand move stands."
    )


def move_champion(
    client, model_name: str, version: str, expected: str | None, generation: int, claimant: str, kind: str
) -> bool:
    """Fenced compare-and-set of the ``champion`` alias: move it from ``expected`` to ``version``,
    decided when the champion's generation was ``generation`` (:func:`champion_state`).

    Each move claims the next number, ``generation + 1``, as a ticket (an experiment named
    ``.ct-loop/<model>/champion-move/<n>``; the tracking store refuses a second experiment of one
    name, so exactly one claimant gets each number, whichever process or host it runs on). So:

    - a move whose generation is stale (another move claimed since: a promotion, a rollback) is
      refused with :class:`PromotionConflict` naming that move, never re-applied;
    - a move whose ``expected`` is not the alias (moved by hand in the UI) is refused the same way,
      and the hand move blocks nothing later: the next decision starts from it;
    - a retry of a claimed move finishes it only while nothing moved since (:func:`_retry_own_move`);
    - no clock is read: a stalled move cannot be taken over by age, and a stalled move whose
      number was overtaken yields to the later one (:func:`_settle`).

    Returns False when this claimant's own earlier try had already moved the alias.
    """
    version, expected = str(version), None if expected is None else str(expected)
    target = int(generation) + 1
    own = _ticket(client, model_name, target)
    if own is not None and own.tags.get("claimant") == claimant:
        return _retry_own_move(client, model_name, version, expected, target, kind)
    n, last = _latest_move(client, model_name)
    if n != int(generation):
        raise PromotionConflict(
            f"{model_name}: this {kind} to v{version} was decided when the champion was v{expected} (generation "
            f"{generation}); since then {_describe(last, n)}. Not applied: evaluate again against the current champion."
        )
    current = get_champion(client, model_name)
    current_v = None if current is None else str(current.version)
    if current_v != expected:
        raise PromotionConflict(
            f"{model_name}: champion is v{current_v} but this {kind} expected v{expected} (the alias was moved "
            "outside the loop since); not overwriting. Re-run the training DAG to evaluate against the current champion."
        )
    move = {"from": str(expected), "to": version, "claimant": claimant, "kind": kind, "at": _now(),
            "generation": str(generation)}  # fmt: skip
    if not _claim(client, model_name, target, move):
        raise PromotionConflict(
            f"{model_name}: another move claimed the champion from v{expected} at the same time "
            f"({_describe(_ticket(client, model_name, target), target)}); this {kind} to v{version} is not applied."
        )
    client.set_registered_model_alias(model_name, CHAMPION, version)
    _create_once(client, _applied_name(model_name, target))
    _settle(client, model_name, target)
    return True


def promote(
    client,
    model_name: str,
    version: str,
    expected_champion: str | None,
    record: dict[str, Any],
    generation: int,
) -> Promotion:
    """Move ``champion`` to ``version`` if it still points where evaluation saw it, at the
    generation evaluation saw (:func:`move_champion`, fenced across processes). A retry after an
    earlier try moved the alias finishes the bookkeeping. Tags that describe the change are
    written only after the alias moved."""
    version, expected = str(version), None if expected_champion is None else str(expected_champion)
    claimant = f"promote:{record.get('airflow_run_id') or 'manual'}:v{version}"
    try:
        move_champion(client, model_name, version, expected, generation, claimant, "promotion")
    except PromotionConflict as exc:  # a fresh challenger says why it is not champion; the task fails
        if not client.get_model_version(model_name, version).tags.get(Tag.DECISION_OUTCOME):
            why = f"{exc} (the evaluation had passed: {record.get('reason') or 'no reason recorded'})"
            _write_decision(client, model_name, version, {**record, "outcome": "conflict", "reason": why,
                                                          "rejected_at": _now()})  # fmt: skip
        else:
            refuse_promotion(client, model_name, version, [str(exc)], record.get("airflow_run_id"))
        raise
    full = {**record, "previous_champion": expected, "promoted_at": _now(), "outcome": "promoted"}
    _write_decision(client, model_name, version, full)
    if expected is not None:
        client.set_model_version_tag(model_name, expected, Tag.REPLACED_BY, version)
    log.info(
        "promoted %s v%s to %s (previous champion: %s)",
        model_name,
        version,
        CHAMPION,
        expected and f"v{expected}",
    )
    return {"model_name": model_name, "champion": version, "previous_champion": expected}


def recorded_evaluation(client, model_name: str, version: str) -> dict[str, Any] | None:
    """The evaluation ``evaluate`` logged for ``version`` (``decision.json`` on the version's own
    training run), or None when no evaluation of it ran to the end."""
    import tempfile
    from pathlib import Path

    from mlflow.exceptions import MlflowException

    run_id = client.get_model_version(model_name, str(version)).run_id
    if not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp, _quiet_download():
        try:
            path = client.download_artifacts(run_id, "decision.json", tmp)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text())


@contextmanager
def _quiet_download():
    """No progress bar for a one-file download: in a task it lands in the log as an error line."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def record_approval(client, model_name: str, version: str, answer: dict[str, Any]) -> None:
    """The person's answer as the approval task read it from Airflow, kept on the version: the
    evidence ``promote`` checks (a task marked success by hand leaves none)."""
    client.set_model_version_tag(model_name, str(version), APPROVAL_TAG, json.dumps(redact_value(answer)))


def recorded_approval(client, model_name: str, version: str) -> dict[str, Any] | None:
    raw = client.get_model_version(model_name, str(version)).tags.get(APPROVAL_TAG)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def refuse_promotion(client, model_name: str, version: str, failures: list[str], run: str | None) -> None:
    """Record on the version that a promotion of it was attempted and refused, and why."""
    text = f"{_now()} (Airflow run {run or '?'}): " + "; ".join(failures)
    client.set_model_version_tag(model_name, str(version), REFUSED_TAG, redact(text)[:5000])
    log.warning("%s v%s: promotion refused: %s", model_name, version, "; ".join(failures))


def reject(
    client, model_name: str, version: str, record: dict[str, Any], outcome: str = "rejected"
) -> Rejection:
    """Record why a challenger was not promoted; the champion is untouched.

    The ``challenger`` alias stays on the rejected version on purpose: ``challenger`` always
    names the latest trained candidate (whatever its verdict, which ``decision.outcome`` gives),
    so it can be loaded as ``models:/<name>@challenger`` to inspect or shadow-test it; the next
    training moves it. Only ``champion`` means "serve this".
    """
    _write_decision(client, model_name, str(version), {**record, "rejected_at": _now(), "outcome": outcome})
    champ = get_champion(client, model_name)
    log.info("%s %s v%s; champion stays v%s", outcome, model_name, version, champ and champ.version)
    return {"model_name": model_name, "rejected": str(version), "champion": champ and str(champ.version)}


def rollback(
    client,
    model_name: str,
    reason: str,
    actor: str = "cli",
    *,
    demote: str | None = None,
    generation: int | None = None,
) -> dict:
    """Point ``champion`` back at the version recorded as ``decision.previous_champion``
    (a fenced move like promotion: a promotion at the same moment makes one of them fail, and
    a retried promotion of the demoted version is refused afterwards).

    ``demote`` names the version the person means to roll back: if another move made a different
    version champion since they looked, nothing is rolled back (they would demote a model they
    never judged). ``generation`` pins the decision to the champion state they saw."""
    import uuid

    seen, current_v = champion_state(client, model_name)
    generation = seen if generation is None else int(generation)
    if current_v is None:
        raise RollbackError(f"{model_name} has no champion")
    if demote is not None and str(demote) != current_v:
        raise PromotionConflict(
            f"{model_name}: the rollback was meant for v{demote}, but the champion is v{current_v} now "
            f"({_describe(_ticket(client, model_name, seen), seen)}). Nothing rolled back: look again and retry."
        )
    current = client.get_model_version(model_name, current_v)
    previous = current.tags.get(Tag.DECISION_PREVIOUS_CHAMPION)
    if not previous or previous == "null":
        raise RollbackError(f"{model_name} v{current_v} has no recorded previous champion")
    reason = redact(reason)
    claimant = f"rollback:{actor}:{uuid.uuid4().hex}"
    move_champion(client, model_name, previous, current_v, generation, claimant, "rollback")
    record = {"from_version": current_v, "reason": reason, "by": actor, "at": _now()}
    client.set_model_version_tag(model_name, current_v, Tag.ROLLBACK_DEMOTED, json.dumps(record))
    client.set_model_version_tag(model_name, previous, Tag.ROLLBACK_RESTORED, json.dumps(record))
    log.warning("rolled back %s champion v%s -> v%s: %s", model_name, current_v, previous, reason)
    return {"model_name": model_name, "champion": previous, "demoted": current_v, "reason": reason}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m include.stages.registry", description="Champion management")
    sub = ap.add_subparsers(dest="cmd", required=True)
    rb = sub.add_parser("rollback", help="restore the previous champion")
    rb.add_argument("--pipeline", required=True)
    rb.add_argument("--reason", required=True)
    rb.add_argument("--demote", metavar="VERSION", help="refuse unless VERSION is still the champion")
    st = sub.add_parser("status", help="show the champion and its decision record")
    st.add_argument("--pipeline", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configure_library_logging()
    settings = Settings.from_env()
    cfg = {c.name: c for c in load_pipelines(settings.pipelines_dir)}.get(args.pipeline)
    if cfg is None:
        ap.error(f"unknown pipeline {args.pipeline!r}")
    client = tracking.client(settings, cfg.experiment)
    if args.cmd == "rollback":
        out = rollback(client, cfg.registered_model, args.reason, demote=args.demote)
    else:
        champ = get_champion(client, cfg.registered_model)
        out = {"champion": None} if champ is None else {"champion": champ.version, "tags": champ.tags}
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
