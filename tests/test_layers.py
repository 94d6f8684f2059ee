"""The layout's import rules (harness/__init__.py), checked by walking every import in harness/.

Data flows one way: data/ imports nothing else from harness; answer/ and present/ work from a run
folder alone, so they never import run/ (or system/, which starts processes); no subpackage imports
the commands on top (cli, calibrate, overhead, recorder_cost, claims_preset).
"""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"

# package → the harness packages its modules may import (besides itself and `harness` for ROOT)
ALLOWED: dict[str, set[str]] = {
    "data": set(),
    "system": {"data"},
    "judge": {"data", "system"},
    "answer": {"data", "judge"},
    "present": {"data", "judge", "answer"},
    "run": {"data", "system", "judge", "present"},
}


def imported_modules(source: str) -> set[str]:
    """Every harness module a source imports, lazily or not (`from harness.x import y` → harness.x.y
    too, since y may be a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def violations(package: str, module: str, source: str) -> list[str]:
    """The imports of `source` (harness/<package>/<module>.py) that break the layer rules."""
    top_commands = {p.stem for p in HARNESS.glob("*.py")} - {"__init__"}
    bad = []
    for name in sorted(imported_modules(source)):
        parts = name.split(".")
        if len(parts) < 2:
            continue  # `harness` itself: ROOT
        other = parts[1]
        if other in top_commands:
            bad.append(f"{package}/{module} imports the command {name}")
        elif other in ALLOWED and other != package and other not in ALLOWED[package]:
            bad.append(f"{package}/{module} imports {name} ({package}/ may import only "
                       f"{', '.join(sorted(ALLOWED[package])) or 'itself'})")
    return bad


def test_every_subpackage_is_in_the_rules():
    packages = {p.name for p in HARNESS.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


def test_no_import_breaks_the_layers():
    bad = []
    for package in ALLOWED:
        for path in sorted((HARNESS / package).glob("*.py")):
            bad += violations(package, path.stem, path.read_text())
    assert bad == []


def test_the_rule_catches_an_upward_import():
    # the checker itself: the imports it must refuse, and one it must let through
    assert violations("answer", "x", "from harness.run import sweep\n")
    assert violations("present", "x", "def f():\n    from harness.run.launch import free_port\n")
    assert violations("data", "x", "from harness.judge import validity\n")
    assert violations("judge", "x", "import harness.cli\n")
    assert violations("run", "x", "from harness.answer.claims import REGISTRY\n")
    assert not violations("run", "x", "from harness.data import knobs\nfrom harness import ROOT\n")


def test_no_module_is_left_flat_but_the_commands():
    flat = {p.stem for p in HARNESS.glob("*.py")} - {"__init__", "__main__"}  # __main__: `python -m harness`
    assert flat == {"cli", "calibrate", "overhead", "recorder_cost", "claims_preset", "audit_cmd", "gate_cmd",
                    "hinge", "baseline_cmd"}


# No module over ~300 lines without a reason in its docstring, no function over ~60 lines.
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
REASON = "over 300 lines"


def _sources() -> list[Path]:
    return sorted(HARNESS.rglob("*.py")) + [HARNESS.parent / "bench.py"]


def size_problems(path: Path, source: str) -> list[str]:
    tree = ast.parse(source)
    out = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES and REASON not in (ast.get_docstring(tree) or ""):
        out.append(f"{path}: {lines} lines and no 'Why one module {REASON}: ...' in its docstring")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                out.append(f"{path}:{node.lineno} {node.name} is {length} lines")
    return out


def test_no_long_module_without_a_reason_and_no_long_function():
    problems = [p for path in _sources() for p in size_problems(path.relative_to(HARNESS.parent),
                                                                 path.read_text())]
    assert not problems, "\n".join(problems)


def test_the_size_rule_catches_a_long_function_and_an_unexplained_module():
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    assert size_problems(Path("m.py"), f'"""doc"""\ndef f():\n{body}\n') == ["m.py:2 f is 62 lines"]
    long_module = '"""doc"""\n' + "x = 1\n" * 301
    assert size_problems(Path("m.py"), long_module)
    explained = f'"""doc\n\nWhy one module {REASON}: a reason."""\n'
    assert not size_problems(Path("m.py"), explained + "x = 1\n" * 301)
