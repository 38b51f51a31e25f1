"""The HTTP API. It never imports torch or the worker: it enqueues jobs by task name."""
