"""Database scenario: closed-loop users on GET /db (DB_QUERIES × pg_sleep(DB_MS) in one transaction,
through the target's driver and pool); plus the /health probe.

Run alone: locust -f scenarios/db.py -H http://127.0.0.1:8000
"""

from _base import HealthProbe, WorkUser

__all__ = ["DbUser", "HealthProbe"]


class DbUser(WorkUser):
    path = "/db"
