"""Workers: the Celery app, the job and reconciler tasks, and the per-process runtime."""
