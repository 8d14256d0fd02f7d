"""Big graphs: how long Deepwire takes to load, analyse, generate and compile them, and how
the module it compiles runs against mlnode's and a hand-written one.

1. Pipeline on 1,000-node graphs, built through `engine.graph.Graph` (add_node / connect) and
   serialised to JSON once: a chain (Input -> 998 Linear(16) -> Output) and a branching DAG
   (pairs of Linear branches merged by Add, with a residual input, or by Concatenate).
   Each repetition times Graph.from_json, analyse, generate and compile (= exec of the source +
   building the module; the generated-module cache is cleared first, so every compile is a
   real one).                                      Target: total (wall) < 0.15 s per graph.
2. analyse() alone on 200-node graphs (chain and DAG), median of many.  Target: < 10 ms.
3. mlnode (optional `bench` extra: pip install mlnode), on the same 1,000-node chain:
   parse (JSON + schema + DAG), validate, build. Skipped with a note if not installed.
4. A 200-layer narrow chain (Linear 16 -> 16, batch 32): per training step (forward + MSE +
   backward + Adam) and per forward (eval, no_grad): mlnode's module, Deepwire's compiled
   module and a hand-written nn.Sequential, with identical weights, interleaved; ratios
   against the hand-written one.

    .venv/bin/python benchmarks/bench_graph_scale.py            # full run (~1 minute)
    .venv/bin/python benchmarks/bench_graph_scale.py --quick    # a short run
    .venv/bin/python benchmarks/bench_graph_scale.py --profile  # + cProfile of the 1,000-node pipeline

Always exits 0: it is a report, not a test.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

try:
    from engine.analysis import analyse
    from engine.codegen import generate
    from engine.compiler import load_source
    from engine.graph import Graph
except Exception as _exc:  # a report always exits 0: say what is broken
    print(f"bench_graph_scale: cannot import Deepwire's engine: {type(_exc).__name__}: {_exc}")
    sys.exit(0)

PIPELINE_TARGET_S = 0.15
ANALYSIS_TARGET_S = 0.010
WIDTH = 16


# ----------------------------------------------------------------------------- graphs

def build_chain(n_nodes: int, width: int = WIDTH, name: str = "chain") -> Graph:
    """Input -> (n_nodes - 2) x Linear(width) -> Output."""
    g = Graph(name)
    prev = g.add_node("Input", "input", {"shape": [width]}, pos=(0, 0))
    for i in range(n_nodes - 2):
        node = g.add_node("Linear", f"dense_{i}", {"units": width}, pos=(240.0 * (i + 1), 0))
        g.connect(prev, node, 0)
        prev = node
    out = g.add_node("Output", "output", pos=(240.0 * (n_nodes - 1), 0))
    g.connect(prev, out, 0)
    return g


def build_dag(n_nodes: int, width: int = WIDTH, name: str = "dag") -> Graph:
    """A branching DAG of 3-node units on a width-`width` trunk x:
    even units: a = Linear(x), b = Linear(x), x = Add(a, b, x)       (two branches + residual)
    odd units:  a = Linear/2(x), b = Linear/2(x), x = Concatenate(a, b)
    then Linear layers until n_nodes - 1, then Output."""
    g = Graph(name)
    x = g.add_node("Input", "input", {"shape": [width]}, pos=(0, 0))
    count, unit, col = 1, 0, 1
    while count + 3 <= n_nodes - 1:
        half = unit % 2 == 1
        units = width // 2 if half else width
        a = g.add_node("Linear", f"branch_a_{unit}", {"units": units, "activation": "relu"}, pos=(240.0 * col, -80))
        b = g.add_node("Linear", f"branch_b_{unit}", {"units": units}, pos=(240.0 * col, 80))
        g.connect(x, a, 0)
        g.connect(x, b, 0)
        if half:
            m = g.add_node("Concatenate", f"concat_{unit}", {"dim": -1}, pos=(240.0 * (col + 1), 0))
            g.connect(a, m, 0)
            g.connect(b, m, 1)
        else:
            m = g.add_node("Add", f"add_{unit}", pos=(240.0 * (col + 1), 0))
            g.connect(a, m, 0)
            g.connect(b, m, 1)
            g.connect(x, m, 2)
        x, count, unit, col = m, count + 3, unit + 1, col + 2
    while count < n_nodes - 1:
        node = g.add_node("Linear", f"dense_{count}", {"units": width}, pos=(240.0 * col, 0))
        g.connect(x, node, 0)
        x, count, col = node, count + 1, col + 1
    out = g.add_node("Output", "output", pos=(240.0 * col, 0))
    g.connect(x, out, 0)
    assert len(g) == n_nodes, len(g)
    return g


def mlnode_chain(n_linear: int, width: int = WIDTH) -> dict:
    """The same chain in mlnode's format (it has no Output node: output_node names the last layer)."""
    nodes = [{"id": "input", "type": "Input", "params": {}}]
    edges = []
    prev = "input"
    for i in range(n_linear):
        nid = f"dense_{i}"
        nodes.append({"id": nid, "type": "Linear", "params": {"in_features": width, "out_features": width}})
        edges.append({"source": prev, "target": nid})
        prev = nid
    return {"mlnode_schema_version": "1.0", "metadata": {"name": "chain"}, "input_shape": ["B", width],
            "output_node": prev, "nodes": nodes, "edges": edges}


# ----------------------------------------------------------------------------- helpers

def clear_generated_cache() -> None:
    """compiler.load_source caches modules by source digest; drop them so each compile is real."""
    for key in [k for k in sys.modules if k.startswith("deepwire_generated_")]:
        del sys.modules[key]


def pipeline_once(text: str) -> dict[str, float]:
    """One load + analyse + generate + compile; wall seconds per stage, and the total's CPU seconds
    (CPU time is less disturbed by other processes on a busy machine)."""
    clear_generated_cache()
    c0 = time.process_time()
    t0 = time.perf_counter()
    graph = Graph.from_json(text)
    t1 = time.perf_counter()
    analysis = analyse(graph)
    t2 = time.perf_counter()
    source, info = generate(graph, analysis)
    t3 = time.perf_counter()
    cls = load_source(source, info.class_name)
    t4 = time.perf_counter()
    model = cls()
    t5 = time.perf_counter()
    c5 = time.process_time()
    assert isinstance(model, nn.Module)
    return {"load": t1 - t0, "analyse": t2 - t1, "generate": t3 - t2, "exec": t4 - t3, "instantiate": t5 - t4,
            "total": t5 - t0, "total CPU": c5 - c0}


def med(xs) -> float:
    return statistics.median(xs)


def ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s >= 0.01 else f"{s * 1e3:.2f} ms"


def us(s: float) -> str:
    return f"{s * 1e6:,.0f} µs"


def copy_by_order(src: nn.Module, dst: nn.Module) -> None:
    with torch.no_grad():
        sp, dp = list(src.parameters()), list(dst.parameters())
        assert len(sp) == len(dp), (len(sp), len(dp))
        for a, b in zip(sp, dp):
            b.copy_(a)


# ----------------------------------------------------------------------------- sections

def section_pipeline(reps: int, profile: bool) -> list[tuple]:
    print("== 1. 1,000-node graphs: Graph.from_json + analyse + generate + compile "
          f"(median of {reps}; target total < {PIPELINE_TARGET_S * 1e3:.0f} ms)")
    rows = []
    texts = {}
    for kind, builder in (("chain", build_chain), ("dag", build_dag)):
        t0 = time.perf_counter()
        graph = builder(1000)
        build_s = time.perf_counter() - t0
        text = graph.to_json()
        texts[kind] = text
        runs = [pipeline_once(text) for _ in range(reps)]
        stages = {k: med([r[k] for r in runs]) for k in runs[0]}
        ok = stages["total"] < PIPELINE_TARGET_S
        rows.append((f"1,000-node {kind} pipeline", stages["total"], PIPELINE_TARGET_S, ok))
        print(f"  {kind:<6} ({len(graph)} nodes, {graph.nx.number_of_edges()} edges, {len(text) // 1024} KiB JSON; "
              f"building it with add_node/connect took {ms(build_s)})")
        print("         " + "  ".join(f"{k} {ms(v)}" for k, v in stages.items())
              + f"   -> {'ok' if ok else 'MISSED'}")
    print("  (exec + instantiate = compile_graph's part after generate; total CPU = process CPU time of the total)")
    if profile:
        for kind, text in texts.items():
            print(f"\n  cProfile of one {kind} pipeline (top 25 by own time):")
            pipeline_once(text)  # warm
            prof = cProfile.Profile()
            prof.enable()
            pipeline_once(text)
            prof.disable()
            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out).sort_stats("tottime")
            stats.print_stats(25)
            print("\n".join("    " + line for line in out.getvalue().splitlines()[6:40]))
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(r"engine", 25)
            print(f"\n  ... and engine functions by cumulative time ({kind}):")
            print("\n".join("    " + line for line in out.getvalue().splitlines()[6:40]))
    print()
    return rows


def section_analysis(reps: int) -> list[tuple]:
    print(f"== 2. analyse() alone, 200-node graphs (median of {reps}; target < {ANALYSIS_TARGET_S * 1e3:.0f} ms)")
    rows = []
    for kind, builder in (("chain", build_chain), ("dag", build_dag)):
        graph = builder(200)
        for _ in range(3):
            analyse(graph)
        times, cpu = [], []
        for _ in range(reps):
            c0 = time.process_time()
            t0 = time.perf_counter()
            result = analyse(graph)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert result.ok, result.errors[:1]
        m = med(times)
        ok = m < ANALYSIS_TARGET_S
        rows.append((f"analyse 200-node {kind}", m, ANALYSIS_TARGET_S, ok))
        print(f"  {kind:<6} median {ms(m)}  (min {ms(min(times))}, median CPU {ms(med(cpu))})"
              f"   -> {'ok' if ok else 'MISSED'}")
    print()
    return rows


def import_mlnode():
    try:
        import mlnode  # noqa: F401
        from mlnode import MLnodeModel
        return MLnodeModel, mlnode.__version__
    except ImportError:
        return None, None


def section_mlnode_pipeline(reps: int, MLnodeModel) -> list[tuple]:
    print(f"== 3. mlnode, same 1,000-node chain (Input + 998 Linear; median of {reps})")
    if MLnodeModel is None:
        print("  mlnode is not installed (pip install mlnode, or the `bench` extra): skipped\n")
        return []
    text = json.dumps(mlnode_chain(998))
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        model = MLnodeModel.from_dict(json.loads(text))
        t1 = time.perf_counter()
        result = model.validate()
        t2 = time.perf_counter()
        module = model.build()  # validates again, then builds
        t3 = time.perf_counter()
        assert result.valid and isinstance(module, nn.Module)
        runs.append({"parse": t1 - t0, "validate": t2 - t1, "build": t3 - t2, "parse+build": (t1 - t0) + (t3 - t2)})
    stages = {k: med([r[k] for r in runs]) for k in runs[0]}
    print("  " + "  ".join(f"{k} {ms(v)}" for k, v in stages.items()))
    print("  (parse = json.loads + pydantic schema + DAG; build() runs validate() itself, so parse+build is "
          "mlnode's whole validate+build path)\n")
    return [("mlnode 1,000-node chain parse+validate+build", stages["parse+build"], None, None)]


def section_runtime(rounds: int, block_s: float, MLnodeModel) -> list[tuple]:
    n_layers, batch = 200, 32
    print(f"== 4. {n_layers}-layer narrow chain (Linear {WIDTH}->{WIDTH}, batch {batch}): per training step "
          f"and per forward, interleaved ({rounds} rounds), medians")
    torch.manual_seed(0)
    compiled = load_source(*_gen(build_chain(n_layers + 2)))()
    hand = nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(n_layers)])
    copy_by_order(compiled, hand)
    models = {"hand-written (nn.Sequential)": hand, "Deepwire compiled": compiled}
    if MLnodeModel is not None:
        ml = MLnodeModel.from_dict(mlnode_chain(n_layers)).build()
        copy_by_order(compiled, ml)
        models["mlnode"] = ml
    else:
        print("  mlnode is not installed: its rows are skipped")
    torch.manual_seed(1)
    x, y = torch.randn(batch, WIDTH), torch.randn(batch, WIDTH)
    with torch.no_grad():
        ref = hand(x)
        for name, m in models.items():
            d = (m(x) - ref).abs().max().item()
            assert d < 1e-4, (name, d)

    def trainer(model):
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            F.mse_loss(model(x), y).backward()
            opt.step()
        return step

    def forwarder(model):
        def fwd():
            with torch.no_grad():
                model(x)
        return fwd

    results = {}
    for what, make, train_mode in (("train step", trainer, True), ("forward", forwarder, False)):
        fns = {}
        for name, m in models.items():
            m.train(train_mode)
            fns[name] = make(m)
        for f in fns.values():
            for _ in range(5):
                f()
        times = {k: [] for k in fns}
        names = list(fns)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for k in order:
                times[k].append(_block(fns[k], block_s))
        results[what] = {k: med(v) for k, v in times.items()}

    base = "hand-written (nn.Sequential)"
    head = f"  {'module':<30}{'train step':>14}{'ratio':>8}{'forward':>14}{'ratio':>8}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    rows = []
    for name in models:
        t, f = results["train step"][name], results["forward"][name]
        rt, rf = t / results["train step"][base], f / results["forward"][base]
        print(f"  {name:<30}{us(t):>14}{rt:>8.3f}{us(f):>14}{rf:>8.3f}")
        rows.append((name, t, rt, f, rf))
    if "mlnode" in models:
        c, m = results["train step"]["Deepwire compiled"], results["train step"]["mlnode"]
        cf, mf = results["forward"]["Deepwire compiled"], results["forward"]["mlnode"]
        print(f"  mlnode / Deepwire compiled: train step {m / c:.3f}, forward {mf / cf:.3f}")
    print()
    return rows


def _gen(graph: Graph):
    source, info = generate(graph)
    return source, info.class_name


def _block(fn, seconds: float) -> float:
    """Seconds per call of `fn`, run until `seconds` have passed (at least once)."""
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        fn()
        n += 1
        t = time.perf_counter()
        if t >= end:
            return (t - t0) / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the 1,000-node pipeline")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    MLnodeModel, ml_version = import_mlnode()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"mlnode {ml_version or 'not installed'}\n")

    rows = []
    rows += section_pipeline(3 if args.quick else 9, args.profile)
    rows += section_analysis(50 if args.quick else 300)
    rows += section_mlnode_pipeline(2 if args.quick else 5, MLnodeModel)
    runtime = section_runtime(6 if args.quick else 20, 0.05 if args.quick else 0.2, MLnodeModel)

    print("== Summary")
    print(f"  {'check':<48}{'measured':>12}{'target':>12}  result")
    for name, value, target, ok in rows:
        tgt = f"< {ms(target)}" if target is not None else "(info)"
        res = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"  {name:<48}{ms(value):>12}{tgt:>12}  {res}")
    for name, _t, rt, _f, rf in runtime:
        print(f"  {'200-layer chain, ' + name:<48}{'step x' + format(rt, '.3f'):>12}{'fwd x' + format(rf, '.3f'):>12}"
              "  (vs hand-written)")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # always exit 0: it is a report
        import traceback

        traceback.print_exc()
        print(f"bench_graph_scale failed: {exc}")
    sys.exit(0)
