"""MLife's closed loop as Kubeflow Pipelines (kfp v2) components and a pipeline."""
