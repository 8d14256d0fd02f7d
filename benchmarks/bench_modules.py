"""Modules (issue #17): a model built with a repeated module trains as fast as the same model flat.

A Module instance with `repeat: n` generates one class for the module and `nn.Sequential` of n
instances of it; ungrouping (`engine.modules.ungroup`) gives the same blocks inline in the top
class. Both compute the same function with the same weights, so the step times should be equal:
the module's only cost is the extra `nn.Module.__call__` per application.

Models (batch 32, CPU):
1. residual MLP: Linear 128 -> Module(ResidualMLP, repeat=8) [LayerNorm, Linear 256 gelu,
   Linear 128, Add] -> Linear 10;
2. residual CNN on 3x16x16: Conv 32 -> Module(ResidualConv, repeat=4) [Conv 3x3 relu, Conv 3x3,
   Add, ReLU] -> global average pool -> Linear 10.

The flat model is the module one ungrouped, its weights copied from the module one (the same
tensors in the same order; the script checks the two give the same outputs in eval mode). Each
training step is forward + cross-entropy + backward + `torch.optim.Adam` step on a fixed batch;
the two models are timed in alternating blocks (the order swaps each round). Columns: the median
step of each (ms), `ratio` of the medians, `best` of the fastest steps, `paired` the median of
the per-round ratios (both timed back to back, so a slow spell of the machine cancels) with its
interquartile range, which shows the noise.            Target: paired modules / flat <= 1.02.

    .venv/bin/python benchmarks/bench_modules.py [--rounds 30] [--steps 5] [--threads 2]

Always exits 0: it is a report, not a test.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import torch

    from engine.compiler import compile_graph
    from engine.graph import Graph, build
    from engine.modules import ungroup
except Exception as _exc:  # a report always exits 0: say what is broken
    print(f"bench_modules: cannot import Deepwire's engine: {type(_exc).__name__}: {_exc}")
    sys.exit(0)

TARGET = 1.02
BATCH = 32


def residual_mlp() -> tuple[Graph, tuple[int, ...]]:
    block = build("ResidualMLP", [("x", "Input", {"shape": [128]}), ("norm", "LayerNorm", {}),
                                  ("fc1", "Linear", {"units": 256, "activation": "gelu"}),
                                  ("fc2", "Linear", {"units": 128}), ("add", "Add", {}), ("y", "Output", {})],
                  [("x", "norm"), ("norm", "fc1"), ("fc1", "fc2"), ("fc2", "add"), ("x", "add"), ("add", "y")])
    graph = build("residual mlp", [("features", "Input", {"shape": [64]}), ("stem", "Linear", {"units": 128}),
                                   ("blocks", "Module", {"module": "ResidualMLP", "repeat": 8}),
                                   ("head", "Linear", {"units": 10}), ("output", "Output", {})])
    graph.add_module("ResidualMLP", block)
    return graph, (64,)


def residual_cnn() -> tuple[Graph, tuple[int, ...]]:
    conv = {"filters": 32, "kernel_size": 3, "padding": "same"}
    block = build("ResidualConv", [("x", "Input", {"shape": [32, 16, 16]}),
                                   ("conv_a", "Conv2d", dict(conv, activation="relu")), ("conv_b", "Conv2d", conv),
                                   ("add", "Add", {}), ("relu", "Activation", {"function": "relu"}),
                                   ("y", "Output", {})],
                  [("x", "conv_a"), ("conv_a", "conv_b"), ("conv_b", "add"), ("x", "add"), ("add", "relu"),
                   ("relu", "y")])
    graph = build("residual cnn", [("image", "Input", {"shape": [3, 16, 16]}),
                                   ("stem", "Conv2d", dict(conv, activation="relu")),
                                   ("blocks", "Module", {"module": "ResidualConv", "repeat": 4}),
                                   ("pool", "GlobalAvgPool", {}), ("head", "Linear", {"units": 10}),
                                   ("output", "Output", {})])
    graph.add_module("ResidualConv", block)
    return graph, (3, 16, 16)


def flat_twin(graph: Graph) -> Graph:
    flat = graph.copy()
    ungroup(flat, flat.find("blocks").id)
    return flat


def same_weights(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Copy `source`'s tensors into `target` in order (the module model's blocks.k.name are the flat one's
    name, name_1, ...: the same tensors in the same order)."""
    a, b = source.state_dict(), target.state_dict()
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a.values(), b.values())):
        raise ValueError("the two models' tensors do not pair up in order")
    target.load_state_dict(dict(zip(b, a.values())))


def step_timer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return (time.perf_counter() - start) / steps
    return run


def compare(name: str, graph: Graph, shape: tuple[int, ...], rounds: int, steps: int) -> float | None:
    torch.manual_seed(0)
    modular = compile_graph(graph)
    flat = compile_graph(flat_twin(graph))
    same_weights(modular, flat)
    x = torch.randn(BATCH, *shape)
    y = torch.randint(0, 10, (BATCH,))
    with torch.no_grad():
        diff = float((modular.eval()(x) - flat.eval()(x)).abs().max())
    timers = {"modules": step_timer(modular, x, y), "flat": step_timer(flat, x, y)}
    for run in timers.values():   # warm up (allocator, Adam's state)
        run(2)
    times: dict[str, list[float]] = {k: [] for k in timers}
    paired = []
    for r in range(rounds):
        order = list(timers) if r % 2 == 0 else list(reversed(timers))
        got = {k: timers[k](steps) for k in order}
        for k, t in got.items():
            times[k].append(t)
        paired.append(got["modules"] / got["flat"])
    med = {k: statistics.median(v) for k, v in times.items()}
    best = min(times["modules"]) / min(times["flat"])
    q = statistics.quantiles(paired, n=4) if len(paired) >= 2 else [paired[0]] * 3
    params = sum(p.numel() for p in modular.parameters())
    print(f"{name:<14}{params:>10,}{med['flat'] * 1e3:>10.2f}{med['modules'] * 1e3:>11.2f}"
          f"{med['modules'] / med['flat']:>8.3f}{best:>7.3f}{q[1]:>9.3f} [{q[0]:.3f}, {q[2]:.3f}]{diff:>11.1e}")
    return q[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds (default 30)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per model per round (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bench_modules: torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
          f"{args.rounds} rounds of {args.steps} steps per model")
    print(f"{'model':<14}{'params':>10}{'flat ms':>10}{'module ms':>11}{'ratio':>8}{'best':>7}{'paired':>9} "
          f"{'(IQR)':<16}{'max |diff|':>11}")
    ratios = {}
    for name, make in (("residual MLP", residual_mlp), ("residual CNN", residual_cnn)):
        try:
            graph, shape = make()
            ratios[name] = compare(name, graph, shape, args.rounds, args.steps)
        except Exception as exc:   # a report: say what failed and go on
            print(f"{name:<14} failed: {type(exc).__name__}: {exc}")
    for name, ratio in ratios.items():
        if ratio is not None:
            verdict = "ok" if ratio <= TARGET else "OVER TARGET (rerun: the machines are noisy)"
            print(f"{name}: modules / flat {ratio:.3f} paired (target <= {TARGET}): {verdict}")


if __name__ == "__main__":
    main()
