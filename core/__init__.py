"""Shared by the API and the worker: settings, database engine and sessions, domain errors, queue names."""
