"""Errors that say whose fault a stopped run is."""

from __future__ import annotations


class InvalidData(ValueError):
    """The user's data (or what the spec asks of it) cannot be trained on, in a way the user can fix:
    the message is a sentence saying what to change. Anything else that goes wrong in the engine is
    the service's own fault, whatever its exception type."""
