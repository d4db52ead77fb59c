"""The loop's decisions, each one pure function of frames, specs and numbers (no I/O, no
MLflow store, no Airflow): which rows a step may use (``windows``), whether a challenger is
promoted (``promotion``), whether a training is triggered (``retraining``). The DAG tasks and
the replay (``include.replay``) call the same functions, so they cannot disagree.
"""
