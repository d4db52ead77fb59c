"""``airflow <command>`` with the pipeline stages' libraries imported first.

The LocalExecutor forks its workers from the scheduler, and every task process is forked from a
worker. What the scheduler imported before it started is therefore shared by every task, instead
of each task importing pandas, scikit-learn, MLflow, Great Expectations and Evidently again
(about 10 s per task on 2 cores, measured through the scheduler). The demo starts
its scheduler this way; ``make up`` and Celery workers use plain ``airflow``.

    python scripts/airflow_preloaded.py scheduler --skip-serve-logs
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

STAGE_LIBRARIES = [
    "pandas", "pyarrow.parquet", "numpy", "scipy.stats", "sklearn.ensemble", "sklearn.linear_model",
    "sklearn.pipeline", "sklearn.compose", "sklearn.impute", "sklearn.preprocessing", "sklearn.inspection",
    "skops.io", "matplotlib.pyplot", "mlflow", "mlflow.sklearn", "mlflow.pyfunc", "mlflow.models.evaluation",
    "great_expectations", "great_expectations.expectations", "evidently", "evidently.presets",
]  # fmt: skip


def preload() -> float:
    t0 = time.monotonic()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from include.foundation.logging_config import configure_library_logging

    configure_library_logging()  # before the imports: the forked tasks inherit it
    import matplotlib

    matplotlib.use("Agg")  # no display in a scheduler
    for name in STAGE_LIBRARIES:
        importlib.import_module(name)
    return time.monotonic() - t0


if __name__ == "__main__":
    seconds = preload()
    logging.getLogger(__name__).warning("preloaded the stage libraries in %.1f s", seconds)
    from airflow.__main__ import main

    sys.argv = ["airflow", *sys.argv[1:]]
    sys.exit(main())
