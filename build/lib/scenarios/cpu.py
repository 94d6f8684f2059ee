"""CPU-bound scenario: closed-loop users on GET /cpu (CPU_MS of calibrated CPU work);
plus the /health probe.

Run alone: locust -f scenarios/cpu.py -H http://127.0.0.1:8000
"""

from _base import HealthProbe, WorkUser

__all__ = ["CpuUser", "HealthProbe"]


class CpuUser(WorkUser):
    path = "/cpu"
