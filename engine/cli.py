"""The headless command line: templates, new, check, summary, code, train, export, import... Never imports Qt."""
from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys
from pathlib import Path

from .analysis import analyse
from .blocks import format_shape
from .codegen import generate
from .fileio import atomic_write_bytes as atomic_write_text_bytes
from .fileio import atomic_write_text
from .flops import count_flops
from .graph import FormatError, Graph
from .project import read_graph
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
    atomic_write_text(out, graph.to_json() + "\n")     # with the dataset the template trains on
    trains_on = f"; trains on {graph.dataset}" if graph.dataset else ""
    print(f"wrote {out} ({args.template}, {len(graph)} blocks{trains_on})")
    return EXIT_OK


def cmd_check(args) -> int:
    graph = _load(args.file)
    analysis = analyse(graph)
    memory = _memory_problem(analysis)
    if args.json:
        diagnostics = [dict(d.to_dict(), name=graph.node(d.node_id).name if d.node_id else None)
                       for d in analysis.diagnostics]
        if memory:
            diagnostics.append({"node_id": None, "severity": "warning", "kind": "memory", "message": memory,
                                "name": None})
        print(json.dumps({"ok": analysis.ok, "diagnostics": diagnostics}, indent=2))
    else:
        for d in analysis.diagnostics:
            print(f"{d.severity}: {d.message}")
        if memory:
            print(f"warning: {memory}")
        n_err, n_warn = len(analysis.errors), len(analysis.warnings)
        status = "ok" if analysis.ok else "has errors"
        print(f"{graph.name}: {status} ({n_err} error{'s' * (n_err != 1)}, "
              f"{n_warn} warning{'s' * (n_warn != 1)}, {len(graph)} blocks)")
    return EXIT_OK if analysis.ok else EXIT_ERRORS


def cmd_summary(args) -> int:
    graph = _load(args.file)
    analysis = analyse(graph)
    memory = _memory_problem(analysis)
    flops = count_flops(graph) if analysis.ok and not memory else {}
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
    if memory:
        print(f"warning: {memory} (FLOPs not counted)")
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


# ----------------------------------------------------------------------------- training commands

def _load_project(path: str):
    from .project import Project, is_project_file, load_project

    if _is_regular(path) and is_project_file(path):   # (opening a pipe to look inside would wait forever)
        project = load_project(path)
        for note in project.notes:      # what the file held that could not be used
            print(f"note: {_printable(note)}", file=sys.stderr)
        return project, True
    return Project(graph=read_graph(path)), False     # which explains what is not a regular graph file


def _is_regular(path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _shown(path) -> str:
    """A path for a one-line message: printable, and long names shortened in the middle."""
    text = _printable(str(path))
    return text if len(text) <= 100 else text[:60] + "..." + text[-37:]


def _need_input_file(path: Path, what: str) -> None:
    """`path` is a regular file that can be opened (never a pipe or device, which would block)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise _Fail(f"{what} {_shown(path)} does not exist") from None
    except OSError as exc:
        raise _Fail(f"cannot read {what} {_shown(path)}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise _Fail(f"{what} {_shown(path)} is a folder; give a file")
    if not stat.S_ISREG(mode):
        raise _Fail(f"{what} {_shown(path)} is not a regular file (a device, pipe or socket); give a file")


def _machine_memory() -> int | None:
    """This machine's physical memory in bytes, where the system says."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _memory_problem(analysis) -> str | None:
    """A sentence when the model's parameters alone (float32) need more than this machine's memory."""
    need, have = analysis.total_params * 4, _machine_memory()
    if have is None or need <= have:
        return None
    return (f"the model needs {_gib(need)} for its {analysis.total_params:,} parameters alone; this machine has "
            f"{_gib(have)} of memory")


def _check_memory(graph: Graph) -> None:
    """Refuse, before anything is allocated, a model that cannot be built here."""
    problem = _memory_problem(analyse(graph))
    if problem:
        raise _Fail(f"{problem}: make the model smaller")


def _dataset_options(args, project=None) -> dict:
    """How to read --dataset: the project's saved options when it names the same data, then --target."""
    options = dict(project.dataset_options) if project is not None and project.dataset == args.dataset else {}
    if getattr(args, "target", None):
        options["target"] = args.target
    return options


def _choose_dataset(args, project) -> None:
    """Without --dataset: the dataset the project (or the graph file, as a template writes it)
    names, said on stderr; none named: a one-line failure that suggests the built-in that fits."""
    if args.dataset:
        return
    named = project.dataset or project.graph.dataset
    if named:
        args.dataset = named
        print(f"deepwire: no --dataset given: using {_printable(named)}, the dataset {_shown(args.file)} names",
              file=sys.stderr)
        return
    analysis = analyse(project.graph)
    fits = _builtin_fitting(analysis)
    hint = f" (--dataset {fits} fits this model)" if fits else ""
    raise _Fail(f"{_shown(args.file)} names no dataset: pass --dataset with a built-in name (see 'datasets') or a "
                f"CSV/NPZ file or folder{hint}")


def _builtin_fitting(analysis) -> str | None:
    """The built-in dataset whose samples fit the model's one Input (and, preferably, its Output)."""
    from .runtime.data.catalog import builtin_for_shape

    inputs = [i for i in analysis.inputs if i in analysis.live]
    if len(inputs) != 1 or inputs[0] not in analysis.specs:
        return None
    spec = analysis.specs[inputs[0]]
    out = analysis.specs.get(analysis.outputs[0]) if len(analysis.outputs) == 1 else None
    return builtin_for_shape(spec.shape, spec.dtype, out.shape if out is not None else None)


def _check_fit(graph: Graph, dataset) -> None:
    """The data fits the model, or a one-line failure that names each mismatch and, when the
    inputs differ, the built-in dataset that fits the model's Input."""
    from .runtime.data.catalog import normalise_name
    from .training import check_data

    analysis = analyse(graph)
    if not analysis.ok:
        return                      # training explains the graph's errors
    problems = check_data(graph, analysis, dataset)
    if not problems:
        return
    inputs = [i for i in analysis.inputs if i in analysis.live]
    hint = ""
    if len(inputs) == 1 and len(analysis.outputs) == 1:
        spec = analysis.specs[inputs[0]]
        fits = _builtin_fitting(analysis)
        if ((tuple(dataset.input_shape), dataset.dtype) != (spec.shape, spec.dtype) and fits
                and fits != normalise_name(str(dataset.name))):
            hint = f"; use --dataset {fits}, which gives {format_shape(spec.shape)}" + (
                " token ids" if spec.dtype == "int64" else "")
    raise _Fail("the data does not fit the model: " + "; ".join(problems) + hint)


def _dataset(args, project=None):
    from .runtime.data import load_dataset

    reading = {"bad_images": args.bad_images} if getattr(args, "bad_images", None) else {}
    try:
        return load_dataset(args.dataset, **_dataset_options(args, project), **reading)
    except OSError as exc:     # e.g. a name longer than the system allows
        raise _Fail(f"cannot read the dataset {_shown(args.dataset)}: {exc.strerror or exc}") from None


def _trained_model(project, file: str):
    from .compiler import compile_graph

    if not project.trained:
        raise _Fail(f"{file} has no trained weights: train it first (python main.py train {file} --dataset ...)")
    _check_memory(project.graph)
    model = compile_graph(project.graph)
    try:
        model.load_state_dict(project.weights, strict=True)
    except RuntimeError as exc:
        raise _Fail(f"{file}: the saved weights do not match the graph ({str(exc).splitlines()[0]})") from None
    return model.eval()


class _Fail(Exception):
    """A user-facing failure of a command: printed as one line, exit 1."""


class _Progress:
    """A progress line on stderr: epoch, batch, loss, metric, samples/s, ETA."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0

    def batch(self, info: dict) -> None:
        import time

        if not self.tty or time.monotonic() - self.last < 0.2:
            return
        self.last = time.monotonic()
        losses = info["losses"]
        eta = info.get("eta_s")
        if not losses:
            return
        self.stream.write(f"\repoch {info['epoch']}/{info['epochs']}  batch {info['batch']}/{info['batches']}  "
                          f"loss {_number(losses[-1])}  {info['samples_per_s']:,.0f} samples/s"
                          + (f"  ETA {_duration(eta)}" if eta is not None else "") + "   ")
        self.stream.flush()

    def epoch(self, rec: dict) -> None:
        parts = [f"epoch {rec['epoch']}/{rec['epochs']}", f"loss {_number(rec['loss'])}"]
        for key in ("accuracy", "val_loss", "val_accuracy", "val_mae"):
            if key in rec:
                parts.append(f"{key} {_number(rec[key])}")
        parts.append(f"{rec['samples_per_s']:,.0f} samples/s")
        parts.append(f"{rec['seconds']:.2f} s")
        self.stream.write(("\r" if self.tty else "") + "  ".join(parts) + ("   \n" if self.tty else "\n"))
        self.stream.flush()


def _number(value, digits: int = 4) -> str:
    """A metric for people: inf, -inf and nan as such; None (a value that was not finite when a
    project was saved, stored as null) as "not finite"."""
    if value is None:
        return "not finite"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _finite_or_none(value):
    """Data for JSON output: non-finite numbers become null, as in a project file."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def cmd_train(args) -> int:
    import signal
    import time
    from dataclasses import replace

    from .project import SUFFIX, is_project_file, load_project
    from .training import Callbacks, NothingTrained, TrainControl, train

    project, is_project = _load_project(args.file)
    overrides = _setting_overrides(args)
    _freeze(project.graph, args.freeze)
    if args.weights:
        _load_start_weights(project, args.weights)
        overrides.setdefault("start_from", "weights")
    if project.config.checkpoint_dir:
        print("note: the project's checkpoint folder is ignored (a project file never chooses where files are "
              "written); use --checkpoint-dir", file=sys.stderr)
    # the folder comes from the command line only, and is not kept in the project
    config = replace(project.config, checkpoint_dir=None, **overrides).validate()
    run_config = replace(config, checkpoint_dir=args.checkpoint_dir)
    out = Path(args.output) if args.output else (Path(args.file) if is_project else Path(args.file).with_suffix(SUFFIX))
    _check_output(out)                     # before the run, not after it
    runs = project.runs
    if out.exists() and not (is_project and out.resolve() == Path(args.file).resolve()):
        if is_project_file(out):
            runs = load_project(out, weights=False).runs + runs  # keep the history already there
        elif not args.force:
            raise _Fail(f"{out} exists and is not a Deepwire project; use -o to choose another file or --force")
    if args.checkpoint_dir:
        _check_folder(Path(args.checkpoint_dir), "the checkpoint folder")
    _check_memory(project.graph)
    _choose_dataset(args, project)
    dataset = _dataset(args, project)
    _check_fit(project.graph, dataset)
    options = _dataset_options(args, project)
    progress = _Progress()
    batch_losses: list[float] = []
    batches = [0]

    def batch_end(info: dict) -> None:      # every batch's loss, kept with the run as the designer keeps it
        batch_losses.extend(info["losses"])
        batches[0] = info["batches"]
        progress.batch(info)

    control = TrainControl()
    previous = signal.signal(signal.SIGINT, lambda *_: (control.stop(), signal.signal(signal.SIGINT, previous)))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        initial = (project.start_weights or project.weights) if run_config.start_from == "weights" else None
        result = train(project.graph, dataset, run_config,
                       Callbacks(batch_end=batch_end, epoch_end=progress.epoch), control, initial=initial)
        if result.start:
            result.start["source"] = project.start_source or "the project's weights"
    except NothingTrained as exc:
        raise _Fail(f"{exc}; {_shown(out)} was not written") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    project.runs = runs
    project.record_run(result, config=config, dataset=args.dataset, options=options, started_at=started,
                       dataset_name=dataset.name, batch_losses=batch_losses, batches_per_epoch=batches[0])
    _save_trained(out, project, args.file)
    if result.note:
        print(f"note: {result.note}", file=sys.stderr)
    if args.json:
        print(json.dumps(_finite_or_none({"output": str(out), **result.summary()}), indent=2))
    else:
        _print_metrics(result.test_metrics, result.class_names, "test")
        note = {"user": " (stopped by you; best weights kept)", "early_stopping": " (early stopping)",
                "diverged": " (ended when the loss stopped being a number; best weights kept)"}
        print(f"saved {out}: {len(result.history)} epoch(s) in {result.seconds:.1f} s on {result.device}"
              f"{note.get(result.stopped, '')}; best epoch {result.best_epoch}")
    return EXIT_OK


def _freeze(graph, names: str | None) -> None:
    """--freeze NAME,...: those blocks (or module instances) keep their weights while the rest trains."""
    if not names:
        return
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        node = graph.find(name)
        if node is None:
            raise _Fail(f"--freeze: no block named {_printable(name)} (names are as the graph shows them, e.g. "
                        f"{', '.join(n.name for n in graph.nodes()[:4])})")
        if "trainable" not in node.params:
            raise _Fail(f"--freeze: {_printable(name)} is a {node.type}, which has no weights to freeze")
        node.params["trainable"] = False


def _load_start_weights(project, path: str) -> None:
    """--weights FILE: match a state dict / Keras weights / project file to the graph, say what matched on
    stderr, and make the matched weights the project's weights and the run's start."""
    from .weights_load import WeightsLoadError, load_weights

    try:
        report = load_weights(project.graph, Path(path), current=project.weights)
    except WeightsLoadError as exc:
        raise _Fail(f"--weights: {exc}") from None
    print(report.summary(), file=sys.stderr)
    if report.applied_state is None:
        raise _Fail(f"--weights: nothing in {_shown(path)} fits this model; nothing was trained")
    project.weights = project.start_weights = report.applied_state
    project.start_source = f"{Path(path).name}: {report.headline()}"


def _check_output(out: Path) -> None:
    """The project file `out` can be written: its folder exists and takes a new file (tried with
    the same kind of temporary file the atomic write uses), and `out` is not a folder or a pipe."""
    import tempfile

    try:
        mode = out.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:    # e.g. a name longer than the system allows
        raise _Fail(f"cannot write {_shown(out)}: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise _Fail(f"cannot write {_shown(out)}: it is a folder")
    if mode is not None and not stat.S_ISREG(mode):
        raise _Fail(f"cannot write {_shown(out)}: it is not a regular file (a device, pipe or socket)")
    folder = out.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise _Fail(f"cannot write {_shown(out)}: the folder {_shown(folder)} {what}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _Fail(f"cannot write {_shown(out)}: {exc.strerror or exc}") from None


def _check_folder(folder: Path, what: str) -> None:
    """A folder to write into: made now if need be, and tried."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _Fail(f"cannot write into {what} {_shown(folder)}: {exc.strerror or exc}") from None


def state_dir() -> Path:
    """The per-user folder for what Deepwire keeps for the user: $DEEPWIRE_STATE_DIR, else
    $XDG_STATE_HOME/deepwire, else ~/.local/state/deepwire (%LOCALAPPDATA%\\deepwire on Windows)."""
    env = os.environ.get("DEEPWIRE_STATE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "deepwire"
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "deepwire"


def _save_trained(out: Path, project, source: str) -> None:
    """Save the trained project to `out`; when that fails (a full disk, a folder gone), save it beside
    the input or in the per-user state folder instead, and say where: a finished run is never lost."""
    import time

    from .project import SUFFIX, save_project

    try:
        save_project(out, project)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
    name = f"{out.stem[:80] or 'project'}-rescued-{time.strftime('%Y%m%d-%H%M%S')}{SUFFIX}"
    tried = []
    for folder in (Path(source).parent, state_dir() / "rescued"):
        target = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            save_project(target, project)
        except OSError:
            tried.append(_shown(folder))
            continue
        raise _Fail(f"could not write {_shown(out)} ({reason}); the trained project was saved to "
                    f"{_printable(str(target.resolve()))} instead")     # in full: the user must find it
    raise _Fail(f"could not write {_shown(out)} ({reason}), nor a copy in {' or '.join(tried)}: "
                "the trained weights are lost")


def _print_metrics(metrics: dict, class_names, label: str) -> None:
    if not metrics:
        print(f"no {label} split (test fraction 0)")
        return
    scalars = "  ".join(f"{k} {_number(v)}" for k, v in metrics.items()
                        if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
    print(f"{label}: {scalars}")
    cm = metrics.get("confusion_matrix")
    if cm:
        names = [str(n) for n in (class_names or range(len(cm)))]
        width = max(5, *(len(n) for n in names), *(len(str(v)) for row in cm for v in row))
        print("confusion matrix (rows: true, columns: predicted)")
        print(" " * (width + 1) + " ".join(n[:width].rjust(width) for n in names))
        for name, row in zip(names, cm):
            print(name[:width].rjust(width) + " " + " ".join(str(v).rjust(width) for v in row))
        for name, p, r in zip(names, metrics["precision"], metrics["recall"]):
            print(f"  {name}: precision {p:.3f}  recall {r:.3f}")


def cmd_evaluate(args) -> int:
    from .analysis import analyse, output_activation
    from .runtime.data import split_dataset
    from .runtime.loop import evaluate, resolve_task, to_tensors
    from .runtime.losses import loss_for
    from .runtime.settings import resolve_device

    project, _ = _load_project(args.file)
    model = _trained_model(project, args.file)
    _choose_dataset(args, project)
    dataset = _dataset(args, project)
    graph, config = project.graph, project.config
    analysis = analyse(graph)
    _check_fit(graph, dataset)
    task = resolve_task(dataset.task, analysis.specs[analysis.outputs[0]].shape)
    final = output_activation(graph, analysis, analysis.outputs[0])
    splits = split_dataset(dataset, config.val_split, config.test_split, config.seed)
    x, y = (splits.x_test, splits.y_test) if len(splits.x_test) else (dataset.x, dataset.y)
    device = resolve_device(args.device or "cpu")
    xt, yt = to_tensors(x, y, task, device)
    num_classes = dataset.num_classes if task == "multiclass" else (2 if task == "binary" else None)
    metrics = evaluate(model.to(device), xt, yt, task, loss_for(config, task, final), num_classes, detail=True,
                       final_activation=final)
    if args.json:
        print(json.dumps(_finite_or_none({"samples": len(x), **metrics}), indent=2))
    else:
        print(f"{len(x)} test samples of '{dataset.name}'")
        _print_metrics(metrics, dataset.class_names, "test")
    return EXIT_OK


def cmd_predict(args) -> int:
    import numpy as np

    from .analysis import analyse
    from .training import predict

    project, _ = _load_project(args.file)
    model = _trained_model(project, args.file)
    analysis = analyse(project.graph)
    spec = analysis.specs[analysis.inputs[0]]
    path = Path(args.input)
    _need_input_file(path, "the input file")
    try:
        if path.suffix.lower() == ".npy":
            x = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".csv":
            x = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1 if _has_header(path) else 0)
        else:
            raise _Fail(f"{path.name}: give inputs as a .npy or .csv file")
    except (OSError, ValueError) as exc:
        raise _Fail(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if tuple(x.shape) == spec.shape:
        x = x[None]
    if tuple(x.shape[1:]) != spec.shape:
        raise _Fail(f"{path.name} holds inputs of shape {format_shape(x.shape[1:])} per sample; "
                    f"the model expects {spec}")
    x = x.astype(np.int64 if spec.dtype == "int64" else np.float32)
    y = predict(model, x, device=args.device or "cpu")
    out = Path(args.output)
    buffer = __import__("io").BytesIO()
    np.save(buffer, y)
    atomic_write_text_bytes(out, buffer.getvalue())
    print(f"wrote {len(y)} prediction(s) of shape {format_shape(y.shape[1:])} to {out}")
    return EXIT_OK


def _has_header(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    try:
        [float(v) for v in first.strip().split(",") if v.strip()]
        return False
    except ValueError:
        return True


def cmd_datasets(args) -> int:
    from .runtime.data import describe_builtins

    rows = describe_builtins()
    if args.json:
        print(json.dumps(rows, indent=2, default=list))
        return EXIT_OK
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        shape = format_shape(r["input_shape"]) if r.get("input_shape") else "?"
        classes = f"{r['num_classes']} classes" if r.get("num_classes") else r["task"]
        print(f"{r['name']:<{width}}  {shape:<12} {classes:<12} {r.get('description', '')}")
    return EXIT_OK


def cmd_cache(args) -> int:
    """The image cache: image folders decoded once (engine/runtime/data/images.py)."""
    from .runtime.data import cache_info, clear_image_cache

    if args.action == "clear":
        count, freed = clear_image_cache()
        print(f"removed {count} image cache file{'s' if count != 1 else ''} ({_mib(freed)})")
        return EXIT_OK
    info = cache_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['folder']}: {info['files']} image cache file{'s' if info['files'] != 1 else ''}, "
          f"{_mib(info['bytes'])} of {_gib(info['limit'])} (DEEPWIRE_IMAGE_CACHE_GB sets the limit)")
    return EXIT_OK


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _printable(text: str) -> str:
    """One line with no control characters (file names and graph names come from users)."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def cmd_export(args) -> int:
    from .export import ExportError, export

    project, _ = _load_project(args.file)
    _check_memory(project.graph)
    try:
        result = export(project, args.format, args.output, force=args.force, dataset=args.dataset)
    except ExportError as exc:
        raise _Fail(str(exc)) from None
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for path in result.files:
        print(path)
    return EXIT_OK


def cmd_import(args) -> int:
    from .importers import ModelImportError, WeightsImportError, import_keras, import_torch
    from .project import SUFFIX, Project, save_project

    source, out = Path(args.source), Path(args.output)
    if out.exists() and not args.force:
        raise _Fail(f"{out} exists; use --force to replace it")
    graph_only = bool(getattr(args, "no_weights", False))
    try:
        if source.suffix == ".py":
            if source.is_file():   # said before the code runs, not only in --help
                print(f"deepwire: importing {_printable(args.source)} runs the Python code in it, as "
                      "`python FILE` would; import only files you trust", file=sys.stderr, flush=True)
            result = import_torch(source, args.class_name, args.input_shape, args.weights, graph_only=graph_only,
                                  flat=args.flat)
        else:
            if args.class_name or args.input_shape or args.flat:
                raise ModelImportError("--class, --input-shape and --flat are for PyTorch .py files")
            result = import_keras(source, args.weights, graph_only=graph_only)
    except WeightsImportError as exc:
        print(f"deepwire: cannot import {_printable(args.source)}: {_printable(str(exc))} (--no-weights imports "
              "the graph alone)", file=sys.stderr)
        return EXIT_ERRORS
    except ModelImportError as exc:
        print(f"deepwire: cannot import {_printable(args.source)}: {_printable(str(exc))}", file=sys.stderr)
        return EXIT_UNREADABLE
    if out.suffix == SUFFIX:
        save_project(out, Project(graph=result.graph, weights=result.weights or None))
    else:
        if result.weights:
            result.notes.append(f"the weights are not saved in a {out.suffix or 'graph'} file; write a {SUFFIX} "
                                "project (-o NAME.deepwire) to keep them")
        atomic_write_text(out, result.graph.to_json() + "\n")
    for note in result.notes:
        print(f"note: {_printable(note)}", file=sys.stderr)
    params = analyse(result.graph).total_params
    weights = " with weights" if result.weights and out.suffix == SUFFIX else ""
    if graph_only:
        weights = " without weights (--no-weights)"
    print(f"wrote {out} ({len(result.graph)} blocks, {params:,} parameters{weights})")
    return EXIT_OK


def _add_setting_flags(p: argparse.ArgumentParser) -> None:
    """One option per training setting that has a flag (engine.runtime.settings.SETTINGS); unset: the project's."""
    from .runtime.settings import SETTINGS

    for s in SETTINGS:
        if not s.flag:
            continue
        if s.kind == "bool":
            p.add_argument(s.flag, dest=s.name, action=argparse.BooleanOptionalAction, default=None,
                           help=s.described)
        elif s.kind == "choice":
            p.add_argument(s.flag, dest=s.name, choices=s.choices, help=s.described)
        else:
            kind = {"int": int, "float": float}.get(s.kind, str)
            p.add_argument(s.flag, dest=s.name, type=kind, help=s.described)


def _setting_overrides(args) -> dict:
    """The training settings given on the command line."""
    from .runtime.settings import SETTINGS

    return {s.name: getattr(args, s.name) for s in SETTINGS
            if s.flag and getattr(args, s.name, None) is not None}


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
    p = sub.add_parser("datasets", help="list the built-in datasets with their shapes")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("train", help="train a graph or project on a dataset and save the trained project")
    p.add_argument("file", help="a graph .json or a project file")
    p.add_argument("--dataset", help="a built-in name (see 'datasets') or a CSV/NPZ file or folder (default: the "
                                     "dataset the project or graph file names, as a template's does)")
    p.add_argument("--target", help="CSV: the column to predict (default: the last)")
    _add_setting_flags(p)
    p.add_argument("-o", "--output", help="project file to write (default: FILE, or FILE with .deepwire)")
    p.add_argument("--checkpoint-dir", dest="checkpoint_dir", metavar="FOLDER",
                   help="also write each epoch's weights to FOLDER/epoch_NNNN.safetensors (a project file's "
                        "own setting is ignored)")
    p.add_argument("--force", action="store_true", help="replace an existing file that is not a project")
    p.add_argument("--json", action="store_true", help="print final metrics and per-epoch history as JSON")
    p.add_argument("--weights", metavar="FILE", help="start from these weights (fine-tuning): a .safetensors or "
                   ".pt/.pth state dict, a Keras .weights.h5, or a .deepwire project; matched to the blocks by name, "
                   "then by order and shape; a block they do not fit (a new head) keeps fresh weights")
    p.add_argument("--freeze", metavar="NAME,...", help="blocks (or module instances) whose weights do not train")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="test metrics and confusion matrix of a trained project")
    p.add_argument("file")
    p.add_argument("--dataset", help="default: the dataset the project was trained on")
    p.add_argument("--target")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("predict", help="run a trained project on inputs from a .npy or .csv file")
    p.add_argument("file")
    p.add_argument("--input", required=True, help="inputs: .npy (N, *shape) or .csv (one sample per row)")
    p.add_argument("-o", "--output", required=True, help="where to write the outputs (.npy)")
    p.add_argument("--device")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("export", help="export a graph or project: python bundle, TorchScript, ONNX or weights")
    p.add_argument("file")
    p.add_argument("--format", choices=("python", "torchscript", "onnx", "weights"), default="python")
    p.add_argument("-o", "--output", required=True, help="folder to write into")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    p.add_argument("--dataset", help="python: the dataset train.py loads (default: the one the project used, or "
                                     "the one the graph names)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("cache", help="the image cache (folders decoded once): its size, or clear it")
    p.add_argument("action", choices=("info", "clear"), nargs="?", default="info")
    p.add_argument("--json", action="store_true", help="machine-readable output (info)")
    p.set_defaults(func=cmd_cache)
    p = sub.add_parser(
        "import", help="turn a PyTorch module (.py) or a Keras model (.keras, .json) into a graph or project",
        description="Import an existing model as an editable graph. A PyTorch .py file is run (importing it "
                    "runs its code, as `python FILE` would: import only files you trust), the class is built "
                    "with no arguments and traced with torch.fx; its weights come along. A Keras .keras file "
                    "or model.to_json() file is read without TensorFlow; its weights (a .keras file's own, or "
                    "--weights FILE.weights.h5) are read with h5py; weights that cannot all be placed in the graph "
                    "stop the import (exit 1) unless --no-weights asks for the graph alone. Anything that does not "
                    "map to a block is named with its source line or layer, and nothing is written (exit 2).")
    p.add_argument("source", help="model.py, a .keras file, or a .json file written by Keras' model.to_json()")
    p.add_argument("--class", dest="class_name", help="PyTorch: the nn.Module class to import (default: the only "
                                                      "one the file defines)")
    p.add_argument("--input-shape", action="append", dest="input_shape", metavar="SHAPE",
                   help="PyTorch: one sample's shape without the batch, e.g. 1,28,28 (repeat for several inputs)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--weights", help="PyTorch: a state dict to load first (.safetensors, or .pt/.pth read "
                                           "without pickle); Keras: a .weights.h5 file to import (needs h5py)")
    weights.add_argument("--no-weights", action="store_true", dest="no_weights",
                         help="import the graph alone, without the model's weights (they are not read)")
    p.add_argument("--flat", action="store_true",
                   help="PyTorch: every block loose in one graph (default: the model's submodules become modules)")
    p.add_argument("-o", "--output", required=True, help="a graph .json, or a .deepwire project (keeps weights)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_import)
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
        file = str(getattr(args, "file", "") or "")
        text = _printable(str(exc))
        if file and len(file) > 100:
            text = text.replace(_printable(file), _shown(file))
        if not text.startswith("cannot read "):
            text = f"cannot read {_shown(file) if file else 'the file'}: {text}"
        print(f"deepwire: {text}", file=sys.stderr)
        return EXIT_UNREADABLE
    except _Fail as exc:
        print(f"deepwire: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    except ValueError as exc:  # DataError, TrainingError (a RuntimeError) below, ConfigError
        print(f"deepwire: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    except RuntimeError as exc:
        from .training import TrainingError

        if isinstance(exc, TrainingError):
            print(f"deepwire: {exc}", file=sys.stderr)
        elif _allocation_failure(exc):
            print(f"deepwire: out of memory: {_printable(str(exc).splitlines()[0])[:200]}", file=sys.stderr)
        else:
            raise
        return EXIT_ERRORS
    except MemoryError:
        print("deepwire: out of memory: make the model or the data smaller", file=sys.stderr)
        return EXIT_ERRORS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:   # the system refused a file operation (a name too long, a full disk, a permission)
        where = f": {_shown(exc.filename)}" if exc.filename else ""
        print(f"deepwire: {_printable(exc.strerror or str(exc))}{where}", file=sys.stderr)
        return EXIT_ERRORS


def _allocation_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "can't allocate memory" in text or "out of memory" in text or "failed to allocate" in text


if __name__ == "__main__":
    sys.exit(main())
