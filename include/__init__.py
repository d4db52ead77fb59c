"""Continuous-training loop: plain Python that the Airflow DAGs in ``dags/`` call.

Stages (``ingest``, ``validation``, ``training``, ``evaluation``, ``drift``) are peers: each does
one job, never imports another, and stands on the foundation (``registry``, ``datasets``,
``sources``, ``handoff``, ``tracking``, ``storage``, ``config``, ``settings``, ``metrics``,
``errors``).
``dag_support`` is the one module that builds Airflow objects, importing Airflow lazily. The
contracts in ``pyproject.toml`` (import-linter, run by ``make lint``) enforce all of this.
"""
