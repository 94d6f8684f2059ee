"""The benchmark pipeline, one subpackage per stage (data flows down this list, never back up):

- `data/`    the facts everything reads: knobs, the plan (matrix), scenarios, ceilings, result schema, store
- `system/`  the processes: spawning, the reaper, leftovers, preflight, the capacity burst, reuseport
- `run/`     builds and runs cells: sweep → cell → launch → drive (+ database, remote load, profile)
- `judge/`   turns a cell's raw files into a row: collect, resources, validity, bottleneck
- `answer/`  reads only finished run folders: aggregate, recommend, compare, claims
- `present/` draws and writes: plots, the HTML report, flame graphs

`cli` and the small commands (calibrate, overhead, recorder_cost, claims_preset, audit_cmd) sit on top.
tests/test_layers.py fails when an import breaks these rules.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project folder: targets/, scenarios/, results/
