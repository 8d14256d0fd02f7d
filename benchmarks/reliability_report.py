"""Measure Deepwire's reliability figures and write docs/RELIABILITY.md.

    .venv/bin/python benchmarks/reliability_report.py                  # ~3 min: 2,000 fuzz examples per loader
    .venv/bin/python benchmarks/reliability_report.py --examples 5000 --kill-cycles 300
    .venv/bin/python benchmarks/reliability_report.py --render-only    # rebuild the page from the figure files

Each measurement runs the project's own tests (tests/engine/test_fuzz_loaders.py,
tests/engine/test_reliability.py, tests/designer/test_recovery.py) with larger counts, and
writes one figure file, docs/reliability/<name>.json. The page is then rendered from every
figure file in that folder, so another measurement (for example the train/stop endurance run)
joins the page by writing its own file there; the schema:

    {"title": "Section title", "order": 50, "summary": "One paragraph.",
     "rows": [["what was measured", "the figure"], ...], "command": "how to reproduce it",
     "measured_at": "YYYY-MM-DD"}

Like the other benchmarks this is a report, not a test: it exits 0 and marks a failed
measurement FAILED in the page.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "reliability"
PAGE = ROOT / "docs" / "RELIABILITY.md"


def pytest(args: list[str], env: dict[str, str]) -> tuple[bool, str, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen", **env), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
    return proc.returncode == 0, tail, seconds


def passed_count(tail: str) -> str:
    m = re.search(r"(\d+) passed", tail)
    failed = re.search(r"(\d+) failed", tail)
    return f"{m.group(1) if m else 0} passed" + (f", {failed.group(1)} FAILED" if failed else "")


def today() -> str:
    return time.strftime("%Y-%m-%d")


def write(name: str, figure: dict) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    figure.setdefault("measured_at", today())
    (FIGURES / f"{name}.json").write_text(json.dumps(figure, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- measurements

def measure_fuzz(examples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        counts_file = Path(tmp) / "fuzz.json"
        ok, tail, seconds = pytest(["tests/engine/test_fuzz_loaders.py"],
                                   {"DEEPWIRE_FUZZ_EXAMPLES": str(examples), "DEEPWIRE_FUZZ_SUBPROCESSES": "1",
                                    "DEEPWIRE_FUZZ_REPORT": str(counts_file)})
        counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    rows, total = [], 0
    for loader, outcomes in counts.items():
        n = sum(outcomes.values())
        total += n
        parts = ", ".join(f"{v:,} {k}" for k, v in sorted(outcomes.items()))
        rows.append([loader, f"{n:,} files: {parts}; 0 tracebacks" if ok else f"{n:,} files: {parts}"])
    rows.append(["total", f"{total:,} mutated files in {seconds:.0f} s (pytest: {passed_count(tail)})"
                 + ("" if ok else " — FAILED: a loader raised something other than a clean error")])
    write("fuzz", {
        "title": "Fuzzing the loaders", "order": 10,
        "summary": "Hypothesis mutates real files (the templates, a saved project, valid CSV / NPZ / IDX "
                   "datasets) byte by byte and field by field: flipped and inserted bytes, JSON tokens, "
                   "truncation, dropped or added zip members with hostile names, other compression methods, "
                   "symlink flags, .npy headers claiming terabytes, damaged IDX headers and gzip streams. "
                   "Every file must give a valid load or one clean error (FormatError / DataError, one line "
                   "naming the file); any other exception fails the run. The `deepwire check` rows run the "
                   "command in-process; the subprocess row runs `python main.py check`.",
        "rows": rows, "command": f"DEEPWIRE_FUZZ_EXAMPLES={examples} DEEPWIRE_FUZZ_SUBPROCESSES=1 "
                                 ".venv/bin/python -m pytest tests/engine/test_fuzz_loaders.py",
        "ok": ok})


def measure_kill(cycles: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "kill.json"
        ok, tail, seconds = pytest(["tests/engine/test_reliability.py", "-k", "killed"],
                                   {"DEEPWIRE_KILL_CYCLES": str(cycles), "DEEPWIRE_KILL_REPORT": str(out)})
        f = json.loads(out.read_text()) if out.exists() else {}
    rows = [
        ["processes killed with SIGKILL while saving", f"{f.get('sigkilled', 0)} of {cycles}"],
        ["file opened and equalled the old or the new version", f"{f.get('old_or_new', 0)} of {cycles}"
         + ("" if ok else " — FAILED")],
        ["... the first version / the second", f"{f.get('equal_a', 0)} / {f.get('equal_b', 0)}"],
        ["kills that landed inside a save (a temporary file was left beside the project)",
         f"{f.get('mid_write', 0)} of {cycles}"],
        ["one save (about 1 MB project, fsync included)", f"{f.get('save_ms', '?')} ms"],
        ["run time", f"{f.get('seconds', seconds):.1f} s"],
    ]
    write("kill", {
        "title": "Saves killed mid-write", "order": 20,
        "summary": "A helper process forks a child that saves a project over and over, alternating two "
                   "versions (different graphs, settings, history and about 1 MB of weights), and kills it "
                   "with SIGKILL after a random delay of up to six saves. After every kill the file is "
                   "opened with `load_project` and compared with both versions. Saves are atomic "
                   "(temporary file in the same folder, fsync, rename, fsync of the folder), so a kill can "
                   "only leave a stray temporary file, never a damaged project.",
        "rows": rows, "command": f"DEEPWIRE_KILL_CYCLES={cycles} .venv/bin/python -m pytest "
                                 "tests/engine/test_reliability.py -k killed",
        "ok": ok})


def measure_hostile() -> None:
    ok, tail, seconds = pytest(["tests/engine/test_reliability.py", "-k", "not killed"], {})
    ok2, tail2, seconds2 = pytest(["tests/engine/test_hostile_files.py"], {})
    rows = [
        ["hostile project archives and data files (tests/engine/test_reliability.py)",
         f"{passed_count(tail)} in {seconds:.0f} s"],
        ["hostile graph files (tests/engine/test_hostile_files.py)", f"{passed_count(tail2)} in {seconds2:.0f} s"],
        ["refused", "members with absolute paths, `..`, drive letters, backslashes or control characters; "
                    "symlink members; encrypted members; duplicate names; more than 64 members; pickles by name "
                    "(.pkl, .pt, .pth, .ckpt, .joblib, .bin, ...) or by content (pickle protocol 2+, torch.save "
                    "zips), including as weights.safetensors; JSON members over 64 MiB (history 256 MiB) and "
                    "weights over 4 GiB by the declared size, and bytes read past the declared size (a zip "
                    "bomb with a lying header); .npy headers claiming more than the file holds; image "
                    "decompression bombs; pipes and devices; CSV over 512 MiB"],
        ["kept and reported", "unknown zip members (Project.notes; never read beyond a pickle check), a GPU "
                              "device the machine lacks (falls back to 'auto', noted)"],
    ]
    write("hostile", {
        "title": "Hostile files", "order": 30,
        "summary": "Project files are JSON and safetensors inside a zip, read without pickle or eval, and "
                   "nothing is ever extracted to disk. A pickle in the archive would have created a marker "
                   "file when unpickled; the tests check it never exists.",
        "rows": rows, "command": ".venv/bin/python -m pytest tests/engine/test_reliability.py "
                                 "tests/engine/test_hostile_files.py",
        "ok": ok and ok2})


def measure_recovery() -> None:
    ok, tail, seconds = pytest(["tests/designer/test_recovery.py", "-p", "no:logging"], {})
    rows = [
        ["designer tests: autosave, kill and restore, crash dialog and log", f"{passed_count(tail)} in "
                                                                          f"{seconds:.0f} s"],
        ["kill and restore", "a designer (started with designer.app.start, opening a saved project) is edited "
                             "through its undo stack and canvas, autosaves, and is killed with SIGKILL; the next "
                             "start offers the work back and restores graph, settings and weights exactly "
                             "(to_dict / tensors compared), marked unsaved and belonging to the original file, "
                             "which was never touched"],
        ["autosave", "every 60 s (DEEPWIRE_AUTOSAVE_MS), only when something changed; the whole project via "
                     "save_project into `<data folder>/recovery/`; removed on save, on undo back to the saved "
                     "state, on new/open and on a normal quit; a running designer's file is never offered to "
                     "another (OS file lock)"],
        ["unexpected errors", "logged with traceback to `<data folder>/logs/deepwire.log` (rotating, 4 x 1 MiB) "
                              "and shown in a non-modal dialog with the details to copy; the app goes on; one "
                              "dialog at a time, at most 5 per session; an error while reporting never recurses"],
    ]
    write("recovery", {
        "title": "Never lose work, never crash", "order": 40,
        "summary": "The per-user data folder is Qt's AppDataLocation, or DEEPWIRE_STATE_DIR when set.",
        "rows": rows, "command": ".venv/bin/python -m pytest tests/designer/test_recovery.py", "ok": ok})


def measure_endurance() -> None:
    """benchmarks/bench_endurance.py writes its own figure file (train / stop cycles in one session)."""
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_endurance.py"), "--cycles", "30",
                           "--json", str(FIGURES / "endurance.json")], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        write("endurance", {"title": "Train / stop endurance", "order": 50, "summary": "The run failed.",
                            "rows": [["output", proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"]],
                            "command": ".venv/bin/python benchmarks/bench_endurance.py", "ok": False})


# ----------------------------------------------------------------------------- the page

def render() -> str:
    figures = []
    for path in sorted(FIGURES.glob("*.json")):
        try:
            figure = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
            continue
        figures.append((figure.get("order", 100), path.stem, figure))
    figures.sort(key=lambda f: (f[0], f[1]))
    lines = ["# Reliability", "",
             "Deepwire never loses work, never crashes on bad input, and never runs what a file says. This page",
             "is generated by `benchmarks/reliability_report.py` from the figure files in `docs/reliability/`;",
             "do not edit it by hand.", ""]
    lines += ["| section | result |", "| --- | --- |"]
    for _, stem, f in figures:
        status = "ok" if f.get("ok", True) else "FAILED"
        lines.append(f"| [{f.get('title', stem)}](#{_anchor(f.get('title', stem))}) | {status} "
                     f"({f.get('measured_at', '?')}) |")
    lines.append("")
    for _, stem, f in figures:
        lines += [f"## {f.get('title', stem)}", "", f.get("summary", ""), "", "| | |", "| --- | --- |"]
        lines += [f"| {_cell(a)} | {_cell(b)} |" for a, b in f.get("rows", [])]
        lines += ["", f"Measured {f.get('measured_at', '?')} with `{f.get('command', '')}`.", ""]
    machine = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    lines += ["## How this page is made", "",
              "`python benchmarks/reliability_report.py` runs each measurement above with larger counts than CI "
              "and writes one JSON file per section into `docs/reliability/`, then renders every file there "
              "(`--render-only` renders without measuring). A new measurement joins the page by writing a file "
              "of the same shape: `title`, `order`, `summary`, `rows` (pairs), `command`, `measured_at`, `ok`.",
              "", f"Last rendered on {machine}.", ""]
    return "\n".join(lines)


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="fuzz examples per loader (default 2000)")
    parser.add_argument("--kill-cycles", type=int, default=100, help="SIGKILLs during saves (default 100)")
    parser.add_argument("--render-only", action="store_true", help="only rebuild the page from the figure files")
    args = parser.parse_args(argv)
    if not args.render_only:
        for label, step in (("fuzzing", lambda: measure_fuzz(args.examples)),
                            ("kill test", lambda: measure_kill(args.kill_cycles)),
                            ("hostile files", measure_hostile), ("recovery", measure_recovery),
                            ("endurance", measure_endurance)):
            started = time.perf_counter()
            print(f"{label}...", end=" ", flush=True)
            step()
            print(f"{time.perf_counter() - started:.0f} s", flush=True)
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
