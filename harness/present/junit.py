"""The audit as a JUnit XML report (`--junit FILE`), from audit.csv's rows: one test case per
measured cell (route × workers), failed when its verdict kind is in `--fail-on` (message: the
verdict and the advice), and one skipped case per route the audit did not measure, with its reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from harness.answer import gate


def to_xml(rows: list[dict], fail_on: Iterable[str], suite: str) -> ET.ElementTree:
    names = set(fail_on)
    root = ET.Element("testsuites", name="fastapi-bench audit")
    ts = ET.SubElement(root, "testsuite", name=suite)
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for row in rows:
        counts["tests"] += 1
        if not gate.is_measured(row):
            case = ET.SubElement(ts, "testcase", classname=suite, name=str(row.get("route", "")))
            ET.SubElement(case, "skipped", message=str(row["verdict"]).removeprefix("skipped: "))
            counts["skipped"] += 1
            continue
        case = ET.SubElement(ts, "testcase", classname=suite, name=gate.cell_label(row))
        kind = gate.row_kind(row)
        detail = _detail(row)
        if kind.name in names:
            counts["failures"] += 1
            fail = ET.SubElement(case, "failure", type=kind.name,
                                 message=f"{row['verdict']}: {row.get('advice', '')}")
            fail.text = detail
        else:
            ET.SubElement(case, "system-out").text = f"{row['verdict']}\n{detail}"
    for key, value in counts.items():
        ts.set(key, str(value))
    ts.set("errors", "0")
    return ET.ElementTree(root)


def _detail(row: dict) -> str:
    keys = ("url", "rps", "p99_ms", "health_p99_ms", "loop_lag_p99_ms", "stall_site", "valid",
            "invalid_reason")
    parts = [f"{k}={row[k]}" for k in keys if row.get(k)]
    return "\n".join(parts)


def write(path: Path, rows: list[dict], fail_on: Iterable[str], suite: str) -> Path:
    tree = to_xml(rows, fail_on, suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
