"""Overhead scenario: closed-loop users on the trivial GET /health — what uvicorn + FastAPI (+ the
in-worker probe, compare with --no-probe) cost per request; plus the /health probe itself.

Run alone: locust -f scenarios/health.py -H http://127.0.0.1:8000
"""

from _base import HealthProbe, WorkUser

__all__ = ["HealthLoadUser", "HealthProbe"]


class HealthLoadUser(WorkUser):
    path = "/health"
