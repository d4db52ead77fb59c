"""Continuous-training loop: plain Python stages that the Airflow DAGs in ``dags/`` call.

Nothing here imports Airflow; each stage takes config and paths and returns small,
JSON-able results.
"""
