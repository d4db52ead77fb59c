"""Promotion and rollback are one compare-and-set across processes: real processes race, one wins.

Each trial starts two spawned processes at a barrier against one MLflow store (SQLite, as in
the embedded default); both were "evaluated" against the same champion. Exactly one moves the
alias, the other ends with PromotionConflict, and the registry tells only the winner's story.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback

import pytest

MODEL = "race_model"
TRIALS = 12


def _racer(uri: str, barrier, results, me: int, trials: list[tuple[str, dict]], generation) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from mlflow import MlflowClient

    from include.stages.registry import PromotionConflict, promote, rollback

    client = MlflowClient(tracking_uri=uri)
    client.get_registered_model(MODEL)  # warm: imports and the first store access before racing
    for kind, args in trials:
        barrier.wait(timeout=120)
        args = {**args, "generation": generation}  # both racers decided at the same generation
        try:
            if kind == "promote":
                record = {"airflow_run_id": args["run"]}
                promote(client, MODEL, args["version"], args["expected"], record, args["generation"].value)
            else:
                rollback(
                    client,
                    MODEL,
                    "race test",
                    actor=f"racer{me}",
                    demote="2",
                    generation=args["generation"].value,
                )
            results.put((me, "won", None))
        except PromotionConflict as exc:
            results.put((me, "conflict", str(exc)))
        except Exception:
            results.put((me, "error", traceback.format_exc()))
        barrier.wait(timeout=120)  # the parent checks and resets before the next trial


def champion_of(client) -> str | None:
    from include.stages.registry import get_champion

    mv = get_champion(client, MODEL)
    return None if mv is None else str(mv.version)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('race') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source="file:///nonexistent/model")
    return uri, client


def test_concurrent_promotions_and_rollbacks_have_exactly_one_winner(store):
    from include.stages.registry import champion_state, move_champion

    uri, client = store
    # promote vs promote from v1 (TRIALS times), then rollback (v2 -> v1) vs promote (v2 -> v3)
    plans = {0: [], 1: []}
    for t in range(TRIALS):
        plans[0].append(("promote", {"version": "2", "expected": "1", "run": f"trial{t}-a"}))
        plans[1].append(("promote", {"version": "3", "expected": "1", "run": f"trial{t}-b"}))
    for t in range(TRIALS // 2):
        plans[0].append(("rollback", {}))
        plans[1].append(("promote", {"version": "3", "expected": "2", "run": f"rb{t}-b"}))
    ctx = mp.get_context("spawn")
    barrier, results, generation = ctx.Barrier(3), ctx.Queue(), ctx.Value("i", 0)
    procs = [
        ctx.Process(target=_racer, args=(uri, barrier, results, i, plans[i], generation)) for i in (0, 1)
    ]
    for p in procs:
        p.start()
    outcomes = []
    try:
        for t in range(len(plans[0])):
            rollback_trial = t >= TRIALS
            start, now = ("2" if rollback_trial else "1"), champion_of(client)
            if now != start:  # through the protocol, as any move is
                move_champion(
                    client, MODEL, start, now, champion_state(client, MODEL)[0], f"reset{t}", "reset"
                )
            generation.value = champion_state(client, MODEL)[0]
            for v in ("1", "2", "3"):
                for key in ("decision.outcome", "ct.replaced_by", "rollback.restored", "rollback.demoted"):
                    client.delete_model_version_tag(MODEL, v, key)
            client.set_model_version_tag(MODEL, "2", "decision.previous_champion", "1")
            barrier.wait(timeout=120)
            got = sorted(results.get(timeout=120) for _ in procs)
            barrier.wait(timeout=120)
            assert not [g for g in got if g[1] == "error"], got
            winners = [me for me, what, _ in got if what == "won"]
            assert len(winners) == 1, f"trial {t}: {got}"
            champion = client.get_model_version_by_alias(MODEL, "champion").version
            if rollback_trial:
                expected = "1" if winners == [0] else "3"
            else:
                expected = "2" if winners == [0] else "3"
                loser = "3" if winners == [0] else "2"
                assert client.get_model_version(MODEL, loser).tags.get("decision.outcome") == "conflict"
                assert client.get_model_version(MODEL, "1").tags.get("ct.replaced_by") == expected
            assert str(champion) == expected, f"trial {t}: alias {champion}, winner {winners}"
            outcomes.append(winners[0])
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert len(outcomes) == TRIALS + TRIALS // 2
