"""The README and docs/ name only commands and flags that exist, and every flag is documented.

`bench.py SUB ...` in a code span or a code block: SUB must be a subcommand and each `--flag` after it
one of SUB's flags. A `--flag` in a span without `bench.py` must be a flag of some subcommand, or one of
another tool's (FOREIGN). Every flag of every subcommand must appear somewhere in README.md or docs/.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from harness import ROOT
from harness.cli import build_parser

# Flags of other programs that the docs name on purpose (Locust, uvicorn, servers, curl, wrk, pip...).
FOREIGN = {
    "--processes", "--csv-full-history", "--json-file", "--expect-workers", "--expect-workers-max-wait",
    "--master", "--worker", "--workers", "--loop", "--http", "--host", "--port", "--headless",
    "--csv", "--run-time", "--users", "--spawn-rate", "--only-summary", "--reload", "--limit-concurrency",
    "--timeout-keep-alive", "--user-data-dir", "--dump-dom", "--virtual-time-budget", "--screenshot",
    "--no-sandbox", "--headless=new", "--interface", "--help", "--master-host", "--master-port",
    "--asgi-loop", "--asgi-lifespan", "--worker-class",  # gunicorn's asgi worker, hypercorn (servers.md)
}
SPAN = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
COMMAND = re.compile(r"(?:bench\.py|fastapi-bench)\s+([a-z][a-z-]*)")  # the clone's, the installed one


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_pieces(text: str) -> list[str]:
    """Inline code spans, and each line of a fenced block (backslash continuations joined)."""
    pieces, fenced = [], re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    for block in fenced:
        pieces += block.replace("\\\n", " ").splitlines()
    pieces += SPAN.findall(re.sub(r"```.*?```", "", text, flags=re.S))
    return pieces


def subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


def problems(files: list[Path], commands: dict[str, argparse.ArgumentParser]) -> list[str]:
    every = set().union(*(flags_of(p) for p in commands.values())) | flags_of(build_parser())  # + --version
    found = []
    for path in files:
        for piece in code_pieces(path.read_text(encoding="utf-8")):
            parts = re.split(r"(?=(?:bench\.py|fastapi-bench)\s+[a-z])", piece)
            for part in parts:
                named = COMMAND.match(part)
                if named and named.group(1) not in commands:
                    found.append(f"{path.name}: no subcommand {named.group(1)!r} in `{piece}`")
                    continue
                allowed = flags_of(commands[named.group(1)]) if named else every | FOREIGN
                for flag in FLAG.findall(part):
                    if flag not in allowed:
                        where = f"bench.py {named.group(1)}" if named else "any subcommand (or FOREIGN)"
                        found.append(f"{path.name}: {flag} is not a flag of {where}, in `{piece}`")
    return found


def undocumented(files: list[Path], commands: dict[str, argparse.ArgumentParser]) -> list[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    named = set(FLAG.findall(text))
    missing = [f"bench.py {name} {flag}" for name, parser in commands.items()
               for flag in sorted(flags_of(parser) - {"--help"}) if flag not in named]
    missing += [f"bench.py {name}" for name in commands if f"bench.py {name}" not in text]
    return missing


def test_docs_name_only_commands_and_flags_that_exist():
    assert problems(doc_files(), subcommands()) == []


def test_every_command_and_flag_is_documented():
    assert undocumented(doc_files(), subcommands()) == []


@pytest.fixture
def parsers() -> dict[str, argparse.ArgumentParser]:
    return subcommands()


def test_a_renamed_flag_fails_both_ways(tmp_path: Path, parsers):
    """The check can fail: docs naming the old flag, and a parser flag no page mentions."""
    doc = tmp_path / "page.md"
    doc.write_text("Run `bench.py run --workers 1,2 --io-msec 50` and `bench.py frobnicate`.\n"
                   "```\nbench.py recommend DIR --slo-p99 500 \\\n  --max-fail 0.1\n```\n")
    found = problems([doc], parsers)
    flagged = {line.split()[1] for line in found}
    assert flagged == {"--io-msec", "no", "--max-fail"}  # "no subcommand 'frobnicate'"
    assert any("'frobnicate'" in line for line in found)
    assert "bench.py run --io-ms" in undocumented([doc], parsers)
