"""The drift check → training handoff: one typed payload, spelled once.

The drift check returns a :class:`RetrainRequest` as the conf of the training run it
triggers; the training DAG's params form has exactly these fields (plus its own options), and
the training run records them on the MLflow run and model version as ``run.<field>`` tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from include.foundation.tracking import Tag

TRIGGERED_RUN_PREFIX = "drift__"  # run id of a training the drift check triggers: drift__<its run id>


@dataclass(frozen=True)
class RetrainRequest:
    """Why a training runs and on data up to when."""

    reason: str = "manual"  # "drift", "performance", "bootstrap", "manual", ...
    as_of: str | None = None  # end of the holdout window (ISO); None = latest curated data
    drift_share: float | None = None  # set by the drift check
    report: str | None = None  # the drift report that triggered the run

    # field -> (JSON-schema type, description): the training DAG's params form is built from it
    FORM = {
        "reason": ("string", "Why this training runs (recorded on the model)"),
        "as_of": (["null", "string"], "End of the holdout window (ISO date); empty = latest curated data"),
        "drift_share": (["null", "number"], "Set by the drift check"),
        "report": (["null", "string"], "Drift report that triggered this run"),
    }

    def to_conf(self) -> dict[str, Any]:
        """The training run's conf (JSON-able)."""
        return asdict(self)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> RetrainRequest:
        """Read the request out of a run's params/conf (other keys are the DAG's own options)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in conf.items() if k in names and v is not None}
        if "drift_share" in values:
            values["drift_share"] = float(values["drift_share"])
        return cls(**values)

    def tags(self) -> dict[str, str]:
        """``run.<field>`` tags for the MLflow run and model version."""
        out = {Tag.run("reason"): self.reason or ""}
        for key in ("drift_share", "report"):
            if getattr(self, key) is not None:
                out[Tag.run(key)] = str(getattr(self, key))
        return out
