"""Mixed scenario: closed-loop users on GET /mixed (one upstream call, then CPU_MS of work);
plus the /health probe.

Run alone: locust -f scenarios/mixed.py -H http://127.0.0.1:8000
"""

from _base import HealthProbe, WorkUser

__all__ = ["MixedUser", "HealthProbe"]


class MixedUser(WorkUser):
    path = "/mixed"
