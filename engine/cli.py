"""The headless command line: templates, new, check, summary, code. Never imports Qt."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .analysis import analyse, count_flops
from .blocks import format_shape
from .codegen import generate
from .fileio import atomic_write_text, read_graph
from .graph import FormatError, Graph
from .templates import describe, load_template, template_names

EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2


def _load(path: str) -> Graph:
    return read_graph(path)


def cmd_templates(args) -> int:
    rows = [describe(name) for name in template_names()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
    return EXIT_OK


def cmd_new(args) -> int:
    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"deepwire: {out} exists; use --force to replace it", file=sys.stderr)
        return EXIT_ERRORS
    graph = load_template(args.template)
    atomic_write_text(out, graph.to_json() + "\n")
    print(f"wrote {out} ({args.template}, {len(graph)} blocks)")
    return EXIT_OK


def cmd_check(args) -> int:
    graph = _load(args.file)
    analysis = analyse(graph)
    if args.json:
        print(json.dumps({"ok": analysis.ok, "diagnostics": [
            dict(d.to_dict(), name=graph.node(d.node_id).name if d.node_id else None)
            for d in analysis.diagnostics]}, indent=2))
    else:
        for d in analysis.diagnostics:
            print(f"{d.severity}: {d.message}")
        n_err, n_warn = len(analysis.errors), len(analysis.warnings)
        status = "ok" if analysis.ok else "has errors"
        print(f"{graph.name}: {status} ({n_err} error{'s' * (n_err != 1)}, "
              f"{n_warn} warning{'s' * (n_warn != 1)}, {len(graph)} blocks)")
    return EXIT_OK if analysis.ok else EXIT_ERRORS


def cmd_summary(args) -> int:
    graph = _load(args.file)
    analysis = analyse(graph)
    flops = count_flops(graph) if analysis.ok else {}
    rows = []
    for node_id in analysis.order:
        node = graph.node(node_id)
        spec = analysis.specs.get(node_id)
        rows.append({"name": node.name, "type": node.type,
                     "output_shape": list(spec.shape) if spec else None,
                     "dtype": spec.dtype if spec else None,
                     "params": analysis.param_counts.get(node_id, 0),
                     "flops": flops.get(node_id)})
    if args.json:
        print(json.dumps({"name": graph.name, "nodes": rows, "total_params": analysis.total_params,
                          "total_flops": sum(flops.values()) if flops else None, "ok": analysis.ok}, indent=2))
        return EXIT_OK if analysis.ok else EXIT_ERRORS
    headers = ("name", "type", "output shape", "params", "FLOPs")
    table = [(r["name"], r["type"], format_shape(r["output_shape"]) if r["output_shape"] else "?",
              f"{r['params']:,}", "" if r["flops"] is None else f"{r['flops']:,}") for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    print(line)
    print("-" * len(line))
    for t in table:
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))))
    print("-" * len(line))
    print(f"Total params: {analysis.total_params:,}")
    if flops:
        print(f"Total FLOPs per sample: {sum(flops.values()):,}")
    for d in analysis.diagnostics:
        print(f"{d.severity}: {d.message}")
    return EXIT_OK if analysis.ok else EXIT_ERRORS


def cmd_code(args) -> int:
    graph = _load(args.file)
    analysis = analyse(graph)
    if not analysis.ok:
        for d in analysis.errors:
            print(f"error: {d.message}", file=sys.stderr)
        return EXIT_ERRORS
    source, _ = generate(graph, analysis)
    sys.stdout.write(source)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepwire",
        description="Deepwire: design neural networks visually. With no command, opens the designer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("templates", help="list the starter models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_templates)
    p = sub.add_parser("new", help="write a starter model to a file")
    p.add_argument("template", help="a name from 'templates'")
    p.add_argument("-o", "--output", required=True, help="graph file to write (.json)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_new)
    p = sub.add_parser("check", help="list a graph's problems (exit 0 clean, 1 errors, 2 unreadable)")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("summary", help="per-block output shape, parameters and FLOPs")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("code", help="print the generated PyTorch source")
    p.add_argument("file")
    p.set_defaults(func=cmd_code)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        return args.func(args)
    except FormatError as exc:
        print(f"deepwire: cannot read {getattr(args, 'file', '') or 'the file'}: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
