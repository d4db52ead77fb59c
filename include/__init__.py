"""Continuous-training loop: plain Python stages that the Airflow DAGs in ``dags/`` call.

Stage modules never import Airflow; each takes config and paths and returns small,
JSON-able results. ``dag_support`` is the one module that builds Airflow objects
(default_args, Assets, params), importing Airflow lazily.
"""
