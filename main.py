"""Deepwire's entry point: no arguments opens the designer; sub-commands run headless."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from engine.cli import build_parser, main as cli_main

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001
    if argv and (argv[0] in commands or argv[0].startswith("-")):
        return cli_main(argv)
    try:
        from designer.app import run  # the designer arrives with its own issue
    except ImportError:
        return cli_main(argv or [])
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
