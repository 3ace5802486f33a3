"""Serving recognisers over HTTP with the compute chosen per batch from a latency target."""
from .app import ServeSettings, create_app
from .scheduler import Job, Overloaded, Scheduler

__all__ = ["Job", "Overloaded", "Scheduler", "ServeSettings", "create_app"]
