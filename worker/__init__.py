"""The Celery worker: thin tasks, and worker/training/, the PyTorch engine."""
