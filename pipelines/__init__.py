"""Pipelines: model registry, generation pipelines and tiny-model builders.

Image families (``sd``, ``sdxl``, ``sd3``) are composed pipelines (``pipelines.composed``): a
short file per family lists its components and its stages (``pipelines.stages``), reusing
diffusers' models, schedulers, VAEs and image processors; genq owns only the flow.

This package knows nothing of databases, HTTP or Celery. Importing it (or its registry) must
not import torch: the API reads the registry to validate requests and stays torch-free.
"""
