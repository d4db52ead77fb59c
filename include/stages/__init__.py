"""The loop's stages: sources and ingestion, validation (GX), datasets, training (MLflow),
evaluation (the promotion gate's inputs), the drift check (Evidently), the registry. Each stage
fetches and records; the decisions it takes are in ``include.decisions``."""
