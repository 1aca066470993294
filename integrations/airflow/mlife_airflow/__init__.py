"""mlife-airflow: Apache Airflow 3 provider for MLife (hook, operators, triggers, an example DAG)."""

__version__ = "0.1.0"
