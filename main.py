"""Deepwire's entry point: no arguments opens the designer; sub-commands run headless."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from engine.cli import build_parser
    from engine.cli import main as cli_main

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001
    if argv and (argv[0] in commands or argv[0].startswith("-")):
        return cli_main(argv)
    import os

    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
        print("deepwire: no display found, so the designer cannot open. The command line works without one:\n",
              file=sys.stderr)
        build_parser().print_help(sys.stderr)
        return 2
    from designer.app import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
