"""
### Pipeline config errors

Not a DAG. Every other DAG file builds its DAGs from the valid pipeline files in
`CT_PIPELINES_DIR` and skips the invalid ones, so one bad file breaks only itself. This file
turns the invalid ones into an import error shown in the Airflow UI (and `airflow dags
list-import-errors`), naming each file, key and what was expected.
"""

from __future__ import annotations

from include.foundation.config import ConfigError, scan_pipelines_once
from include.foundation.settings import Settings

_errors = scan_pipelines_once(Settings.from_env().pipelines_dir)[1]
if _errors:
    raise ConfigError(
        f"{len(_errors)} pipeline file(s) skipped (their DAGs are not built):\n"
        + "\n".join(map(str, _errors))
    )
