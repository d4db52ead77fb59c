"""The only place in ``include`` that speaks Airflow: DAG defaults, the task error policy,
Assets, Params, callbacks and notifiers."""
