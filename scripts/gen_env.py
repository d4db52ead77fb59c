"""Print a .env with fresh random secrets for docker-compose.yaml: python scripts/gen_env.py > .env"""

from __future__ import annotations

import base64
import os
import secrets


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


if __name__ == "__main__":
    for key, value in generate().items():
        print(f"{key}={value}")
