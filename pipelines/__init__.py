"""Pipelines: model registry, generation pipelines and tiny-model builders.

This package knows nothing of databases, HTTP or Celery. Importing it (or its registry) must
not import torch: the API reads the registry to validate requests and stays torch-free.
"""
