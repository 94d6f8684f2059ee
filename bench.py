#!/usr/bin/env python3
"""FastAPI concurrency benchmark harness. `python bench.py --help`; see README.md."""

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
