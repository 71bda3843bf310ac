"""Storage: database models and sessions, the job state machine, and the object store.

Knows nothing of HTTP, Celery or pipelines.
"""
