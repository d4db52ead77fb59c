"""A .env with fresh random secrets for docker-compose.yaml, readable by its owner only:
python scripts/gen_env.py --write .env"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path


def generate() -> dict[str, str]:
    return {
        # the image's run user: named volumes are created owned by it (never root, whoever runs this)
        "AIRFLOW_UID": "50000",
        "POSTGRES_AIRFLOW_PASSWORD": secrets.token_urlsafe(24),
        "POSTGRES_MLFLOW_PASSWORD": secrets.token_urlsafe(24),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "AIRFLOW_OPERATOR_PASSWORD": secrets.token_urlsafe(16),
        "AIRFLOW_VIEWER_PASSWORD": secrets.token_urlsafe(16),
        "MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "MLFLOW_SECRET_KEY": secrets.token_urlsafe(32),
    }


def main(argv: list[str]) -> int:
    """``--write PATH``: a new file readable by its owner only (refuses to overwrite); else stdout."""
    text = "".join(f"{key}={value}\n" for key, value in generate().items())
    if argv[:1] == ["--write"] and len(argv) == 2:
        path = Path(argv[1])
        if path.exists():
            sys.exit(f"{path} exists: its secrets are in use; remove it first to make new ones")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from include.foundation.redaction import write_private

        write_private(path, text)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
