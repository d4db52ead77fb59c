"""The loop's stages: sources and ingestion, validation (GX), datasets, training (MLflow),
evaluation (the promotion gate's inputs), the drift check (Evidently), scoring (the prediction
log), the registry. Each stage
fetches and records; the decisions it takes are in ``include.decisions``."""
