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


FAILED_LINES: list[str] = []   # the "FAILED test - reason" lines of the last pytest() call


def pytest(args: list[str], env: dict[str, str]) -> tuple[bool, str, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen", **env), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
    FAILED_LINES[:] = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
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
        keras_file = Path(tmp) / "fuzz_keras.json"
        ok_keras, tail_keras, seconds_keras = pytest(
            ["tests/engine/test_fuzz_keras.py"], {"DEEPWIRE_FUZZ_EXAMPLES": str(examples),
                                                  "DEEPWIRE_FUZZ_REPORT": str(keras_file)})
        if keras_file.exists():
            counts.update(json.loads(keras_file.read_text()))
    ok, seconds = ok and ok_keras, seconds + seconds_keras
    tail = f"{passed_count(tail)} + {passed_count(tail_keras)}"
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
                   "symlink flags, .npy headers claiming terabytes, damaged IDX headers and gzip streams; "
                   "Keras model configurations (the real Keras 3 fixtures and hand-written ones) with keys "
                   "dropped, types changed, layers and inbound nodes damaged, about one in ten of them run "
                   "through `deepwire import` (a Keras failure must be one line naming the layer). "
                   "Every file must give a valid load or one clean error (FormatError / DataError, one line "
                   "naming the file); any other exception fails the run. The `deepwire check` rows run the "
                   "command in-process; the subprocess row runs `python main.py check`.",
        "rows": rows, "command": f"DEEPWIRE_FUZZ_EXAMPLES={examples} DEEPWIRE_FUZZ_SUBPROCESSES=1 "
                                 ".venv/bin/python -m pytest tests/engine/test_fuzz_loaders.py "
                                 "tests/engine/test_fuzz_keras.py",
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
    ok, tail, seconds = pytest(["tests/engine/test_reliability.py", "tests/engine/test_project_limits.py",
                                "tests/engine/test_data_limits.py", "tests/engine/test_keras_hostile.py",
                                "-k", "not killed"], {})
    ok2, tail2, seconds2 = pytest(["tests/engine/test_hostile_files.py"], {})
    rows = [
        ["hostile project archives, Keras weights and data files (tests/engine/test_reliability.py, "
         "test_project_limits.py, test_data_limits.py, test_keras_hostile.py)",
         f"{passed_count(tail)} in {seconds:.0f} s"],
        ["hostile graph files (tests/engine/test_hostile_files.py)", f"{passed_count(tail2)} in {seconds2:.0f} s"],
        ["refused", "members with absolute paths, `..`, drive letters, backslashes or control characters; "
                    "symlink members; encrypted members; duplicate names; more than 64 members; pickles by name "
                    "(.pkl, .pt, .pth, .ckpt, .joblib, .bin, ...) or by content (pickle protocol 2+, torch.save "
                    "zips), including as weights.safetensors; graph.json over 64 MiB, project.json and "
                    "config.json over 1 MiB and weights over 4 GiB by the declared size, and bytes read past "
                    "the declared size (a zip bomb with a lying header); safetensors headers whose layout "
                    "does not add up; .npy headers claiming more than the file holds; images whose header "
                    "claims far more pixels than the chosen image size needs; pipes and devices; CSV "
                    "files whose float32 table would not fit in the memory available (estimated before "
                    "reading); Keras weights with external storage, external or soft links, virtual datasets, "
                    "unknown filters or declared sizes the file cannot hold, and .keras weights members "
                    "that would expand past their limit"],
        ["kept and reported", "unknown zip members (Project.notes; never read beyond a pickle check), a GPU "
                              "device the machine lacks (falls back to 'auto', noted), a history over 64 MiB "
                              "or epoch weights over 1 GiB (skipped, noted), settings that are out of range "
                              "or not finite (their default, noted), weights holding NaN or infinity "
                              "(noted, naming the first tensor)"],
    ]
    write("hostile", {
        "title": "Hostile files", "order": 30,
        "summary": "Project files are JSON and safetensors inside a zip, read without pickle or eval, and "
                   "nothing is ever extracted to disk. A pickle in the archive would have created a marker "
                   "file when unpickled; the tests check it never exists.",
        "rows": rows, "command": ".venv/bin/python -m pytest tests/engine/test_reliability.py "
                                 "tests/engine/test_project_limits.py tests/engine/test_data_limits.py "
                                 "tests/engine/test_keras_hostile.py tests/engine/test_hostile_files.py",
        "ok": ok and ok2})


# What an attacker from outside the project found (issue #13), each with what Deepwire does now and the
# tests that hold it there.
ATTACKS = [
    ("Keras weights made with HDF5 external storage, external links or virtual datasets (read any local file)",
     "refused before any array is read, one line naming the dataset", "test_keras_hostile.py"),
    ("a .keras whose model.weights.h5 expands to GiBs; an h5 dataset declaring a huge shape in a 1 MB file",
     "refused from the declared sizes, before reading (peak memory below)", "test_keras_hostile.py"),
    ("real Keras 3 files whose weights are filed by class (layers/dense_1), not by layer name",
     "weights placed as Keras files them; outputs equal Keras' (9 real fixtures); weights that cannot all "
     "be placed: exit 1 naming the layer, unless --no-weights (or the designer's 'graph only')",
     "test_keras_real.py, test_import_cli.py"),
    ("mutated Keras configurations", "one line naming the layer, exit 2 (fuzz counts above)",
     "test_fuzz_keras.py"),
    ("a run whose test MSE is inf; 1e400 in a history; grad_clip 1e309 in a project",
     "saved with null for the metric and shown as 'inf' / 'not finite'; the setting falls back to its "
     "default with a note; non-finite settings refused when set", "test_project_limits.py, test_cli_training.py"),
    ("train -o into a missing folder; a full disk at the final save",
     "the output is checked before the first batch; a failed save writes the project beside the input or in "
     "the per-user state folder and says where", "test_cli_training.py"),
    ("checkpoint_dir in a project file", "ignored with a note: epoch files go only where --checkpoint-dir "
     "or the designer says", "test_cli_training.py"),
    ("check of a small project whose weights expand to GiBs", "the graph alone is read (peak memory below)",
     "test_project_limits.py"),
    ("an image folder of 9,000 x 9,000 PNGs", "refused from the header, naming the file (peak memory below)",
     "test_data_limits.py"),
    ("Stop before the first batch; a NaN loss at epoch N", "nothing trained: nothing written, said so; a NaN "
     "keeps the best epoch so far and says at which epoch the run diverged", "test_training.py, "
     "test_cli_training.py, test_training_panel.py"),
    ("export of an enormous model; names over 255 characters; a FIFO or device as input; a huge seed",
     "one line, exit 1 or 2, at once; check warns when the parameters cannot fit in memory",
     "test_cli_robustness.py"),
    ("saving over a 0644 file", "the file keeps its mode; a new file gets the umask's", "test_project_limits.py"),
    ("import of a model.py", "stderr says the file's code is run before it runs", "test_import_cli.py"),
    ("NaN/Inf weights in a project or an imported file; decimal commas in a ';' CSV",
     "a note naming the first tensor; the columns read as numbers", "test_project_limits.py, "
     "test_data_limits.py, test_keras_real.py"),
    ("the autosave writer and its side file", "the side file is written first; a recovery file without one "
     "is still offered", "test_recovery.py"),
]

BOMBS = r"""
import json, resource, struct, sys, zipfile
from pathlib import Path
work = Path(sys.argv[1])

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def deflated_zeros(zf, name, size, head=b""):
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as f:
        f.write(head)
        chunk = bytes(1 << 24)
        left = size
        while left:
            f.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))

import torch, engine.cli
from engine.importers import ModelImportError, import_keras
from engine.runtime.data import DataError, load_dataset
from engine.project import Project, save_project
from engine.templates import load_template
import_keras({"class_name": "Sequential", "config": {"name": "m", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "i"}},
    {"class_name": "Dense", "config": {"units": 2, "name": "d"}}]}})
base = rss()
what, gib = sys.argv[2], 4
if what == "check":
    save_project(work / "base.deepwire", Project(load_template("digits_mlp")))
    n = int(3.9 * 2**30) // 4          # under the 4 GiB a weights member may declare
    header = json.dumps({"big": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    bomb = work / "bomb.deepwire"
    with zipfile.ZipFile(work / "base.deepwire") as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            if info.filename != "weights.safetensors":
                zf.writestr(info.filename, src.read(info))
        zf.compression = zipfile.ZIP_DEFLATED
        deflated_zeros(zf, "weights.safetensors", 4 * n, struct.pack("<Q", len(header)) + header)
    base = rss()
    assert engine.cli.main(["check", str(bomb)]) == 0
elif what == "keras":
    bomb = work / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"name": "m", "layers": [
            {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "i"}},
            {"class_name": "Dense", "config": {"units": 2, "name": "d"}}]}}))
        deflated_zeros(zf, "model.weights.h5", gib * 2**30)
    base = rss()
    try:
        import_keras(bomb)
        sys.exit("imported")
    except ModelImportError:
        pass
else:
    from PIL import Image
    import zlib
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    def png(w, h):
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(w * 3 + 1) * 64)) + chunk(b"IEND", b""))
    for name in ("cats", "dogs"):
        (work / "pics" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 24)).save(work / "pics" / name / f"{i}.png")
    for i in range(3):
        (work / "pics" / "dogs" / f"huge{i}.png").write_bytes(png(9000, 9000))
    bomb = work / "pics"
    base = rss()
    try:
        load_dataset(str(bomb), image_size=(64, 64))
        sys.exit("loaded")
    except DataError:
        pass
size = sum(p.stat().st_size for p in ([bomb] if bomb.is_file() else bomb.rglob("*")))
print(json.dumps({"file_mb": size / 2**20, "base_mb": base, "peak_mb": rss()}))
"""


def measure_attacks() -> None:
    files = sorted({f.strip() for _, _, tests in ATTACKS for f in tests.split(",")})
    paths = [f"tests/{'designer' if f in ('test_recovery.py', 'test_training_panel.py') else 'engine'}/{f}"
             for f in files]
    ok, tail, seconds = pytest(paths, {})
    rows = [[attack, f"{outcome} ({tests})"] for attack, outcome, tests in ATTACKS]
    labels = {"check": "`deepwire check` of a project whose weights expand to 3.9 GiB",
              "keras": "Keras import of a .keras whose weights member expands to 4 GiB",
              "images": "loading an image folder holding three 9,000 x 9,000 PNGs at 64 x 64"}
    for what, label in labels.items():
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, "-c", BOMBS, tmp, what], cwd=ROOT, capture_output=True,
                                  text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if proc.returncode != 0:
            ok = False
            rows.append([label, "FAILED: " + (proc.stderr.strip().splitlines() or ["?"])[-1]])
            continue
        f = json.loads(proc.stdout.strip().splitlines()[-1])
        outcome = "the graph read, the weights never decoded" if what == "check" else "refused"
        rows.append([f"peak memory: {label} ({f['file_mb']:.1f} MB on disk)",
                     f"{outcome}; peak RSS {f['peak_mb']:.0f} MiB, {f['peak_mb'] - f['base_mb']:+.0f} MiB over "
                     "the process before it (torch and Deepwire loaded)"])
    rows.append(["the tests above", f"{passed_count(tail)} in {seconds:.0f} s"])
    write("attacks", {
        "title": "Attacks from outside the project", "order": 35,
        "summary": "Deepwire was attacked with hostile inputs by someone outside the project, and tried as a new "
                   "user would. Each finding, what Deepwire does now, and the test files that hold it there. "
                   "Before these fixes `check` of the 4 GiB project peaked at about 8.4 GiB and the image "
                   "folder at about 4.6 GB (measured in the same way).",
        "rows": rows, "command": ".venv/bin/python benchmarks/reliability_report.py (measure_attacks)",
        "ok": ok})


STEADY_RUNS = 5


def measure_steady() -> None:
    """The designer tests, five times in a row, while two processes keep both cores busy."""
    burn = subprocess.Popen([sys.executable, "-c", "import multiprocessing as mp\n"
                             "def spin(_):\n    while True: pass\n"
                             "if __name__ == '__main__':\n    mp.Pool(2).map(spin, range(2))"])
    results, failures = [], []
    try:
        for _ in range(STEADY_RUNS):
            results.append(pytest(["tests/designer"], {}))
            failures.extend(FAILED_LINES)
    finally:
        burn.kill()
        subprocess.run(["pkill", "-f", "def spin"], capture_output=True)
    ok = all(r[0] for r in results)
    rows = [[f"run {i + 1}", f"{passed_count(tail)} in {seconds:.0f} s"] for i, (_, tail, seconds) in
            enumerate(results)]
    rows.append(["runs with a failure", f"{sum(not r[0] for r in results)} of {STEADY_RUNS}"])
    rows += [["failed", line[:300]] for line in failures]
    write("steady", {
        "title": "The test suite under load", "order": 45,
        "summary": f"The designer tests (tests/designer, the slow ones included) run {STEADY_RUNS} times in a row "
                   "while two busy-looping processes keep both cores of the machine busy: a test that depends "
                   "on timing fails here first.",
        "rows": rows, "command": ".venv/bin/python benchmarks/reliability_report.py (measure_steady)", "ok": ok})


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
    parser.add_argument("--only", help="run only these measurements, e.g. attacks,steady")
    args = parser.parse_args(argv)
    if not args.render_only:
        only = set(args.only.split(",")) if args.only else None
        for label, step in (("fuzzing", lambda: measure_fuzz(args.examples)),
                            ("kill test", lambda: measure_kill(args.kill_cycles)),
                            ("hostile files", measure_hostile), ("attacks", measure_attacks),
                            ("recovery", measure_recovery), ("steady", measure_steady),
                            ("endurance", measure_endurance)):
            if only is not None and label.split()[0] not in only:
                continue
            started = time.perf_counter()
            print(f"{label}...", end=" ", flush=True)
            step()
            print(f"{time.perf_counter() - started:.0f} s", flush=True)
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
