"""The harness's additions to your own Locust file (`--locustfile FILE`): the /health probe user and
the exact per-request recorder (imported with _base). Locust loads it next to your file
(`-f scenarios/probe.py,FILE`); your users share the remaining user count by their weights.
"""

from _base import HealthProbe

__all__ = ["HealthProbe"]
