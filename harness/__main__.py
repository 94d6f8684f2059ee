"""`python -m harness …`: the same command as `bench.py` in the clone and `fastapi-bench` installed."""

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
