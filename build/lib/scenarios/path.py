"""Any endpoint (`bench.py run --app ... --path /x` or `--url ... --path /x`): closed-loop users on
GET BENCH_PATH; plus the /health probe (on BENCH_HEALTH_PATH).

Run alone: BENCH_PATH=/items locust -f scenarios/path.py -H http://127.0.0.1:8000
"""

import os

from _base import HealthProbe, WorkUser

__all__ = ["PathUser", "HealthProbe"]


class PathUser(WorkUser):
    path = os.environ.get("BENCH_PATH") or "/"
