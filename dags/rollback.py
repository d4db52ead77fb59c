"""
### Rollback: restore the previous champion

Manual only (`<pipeline>__rollback`). Points the registry alias `champion` back at the version
recorded as `decision.previous_champion` on the current champion, and records the rollback
(who, why, when) on both versions' tags. Same as `python -m include.stages.registry rollback`.
Give `demote` the version you looked at: if another move made a different version champion
meanwhile, nothing is rolled back (the run fails saying which move came first).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from include.orchestration.dag_building import build_for_each_pipeline, champion_asset, dag_defaults
from include.orchestration.task_door import stage_call


def build_rollback_dag(cfg, settings):
    champion = champion_asset(cfg)

    @dag(
        dag_id=f"{cfg.name}__rollback",
        schedule=None,
        **dag_defaults(cfg, settings, "rollback", f"Restore the previous {cfg.registered_model} champion"),
        doc_md=__doc__,
        params={
            "reason": Param(
                "",
                type="string",
                minLength=3,
                description="Why the current champion is rolled back (recorded on the model)",
            ),
            "demote": Param(
                None,
                type=["null", "string"],
                description="The version you mean to roll back (optional): nothing moves if another "
                "version is champion by then",
            ),
        },
    )
    def rollback_dag():
        @task(outlets=[champion], retries=0)
        @stage_call
        def rollback(params=None) -> dict:
            from include.foundation import tracking
            from include.stages.registry import rollback

            actor = f"airflow:{get_current_context()['run_id']}"
            client = tracking.client(settings, cfg.experiment)
            demote = params.get("demote") or None
            return rollback(client, cfg.registered_model, params["reason"], actor, demote=demote)

        rollback()

    return rollback_dag()


build_for_each_pipeline(globals(), "rollback", build_rollback_dag)
