"""Distributed execution on Celery: the daemon sends due work as tasks, `replica worker` runs them."""
