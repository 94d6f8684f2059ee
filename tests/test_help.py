"""Every command's --help prints: argparse %-formats each help text, so a bare percent sign in one
flag's help made `bench.py audit --help` a traceback."""

import pytest

from harness.cli import build_parser


def _commands() -> dict:
    parser = build_parser()
    return dict(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_help_formats(name: str) -> None:
    text = _commands()[name].format_help()
    assert text.startswith("usage:") and name in text.splitlines()[0]


def test_audit_help_states_the_regression_default_as_a_percent() -> None:
    text = " ".join(_commands()["audit"].format_help().split())
    assert "(default: 10%)" in text
