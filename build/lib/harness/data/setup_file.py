"""`--setup FILE` checked before anything is launched (harness/run/seed.py runs it)."""

from __future__ import annotations

import ast
from pathlib import Path


class SetupError(ValueError):
    """The setup file is unusable, or its function failed: one line."""


def check(path: str) -> str:
    """The file's absolute path when it defines a top-level `setup` function; SetupError otherwise.
    Read without running it, so bad input launches nothing."""
    file = Path(path)
    if not file.is_file():
        raise SetupError(f"--setup {path!r} is not a file")
    try:
        tree = ast.parse(file.read_text(), filename=str(file))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise SetupError(f"--setup {path!r}: not valid Python ({exc})") from None
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    if "setup" not in names:
        raise SetupError(f"--setup {path!r}: defines no top-level function setup(base_url)")
    return str(file.resolve())
