"""Unique names: how long default-named `Graph.add_node` calls and `Namespace.create` take.

Every block added without a name gets its block's default name made unique (`dense_1`,
`dense_2`, ...), and code generation makes every node's name a unique identifier with
`naming.Namespace`. Both keep a counter per base name, so each name costs O(1) however many
share the base (issue #15: 2,000 adds took 3.7 s when suffixes were probed one by one).

1. N x `Graph.add_node("Linear")` (all named dense_N) into an empty graph, for N = 1,000,
   2,000 and 10,000, against the baseline measured in the same run: adding the same number
   of plain nodes to a `networkx.MultiDiGraph`.        Target: 2,000 adds well under 1 s.
2. N x `Namespace().create("dense")` against the baseline of adding N strings to a set.
3. The same with removals: N adds, every other node removed, N adds again (freed names
   are reused, the counter steps back).

    .venv/bin/python benchmarks/bench_names.py               # 1,000 / 2,000 / 10,000
    .venv/bin/python benchmarks/bench_names.py --sizes 1000 2000

Always exits 0: it is a report, not a test.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import networkx as nx  # noqa: E402

try:
    from engine.graph import Graph, Node
    from engine.naming import Namespace
except Exception as _exc:  # a report always exits 0: say what is broken
    print(f"bench_names: cannot import Deepwire's engine: {type(_exc).__name__}: {_exc}")
    sys.exit(0)

TARGET_2000_S = 1.0


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def add_nodes(n: int) -> None:
    g = Graph()
    for _ in range(n):
        g.add_node("Linear")


def plain_networkx(n: int) -> None:
    g = nx.MultiDiGraph()
    for i in range(n):
        g.add_node(f"n{i}", node=Node(f"n{i}", f"dense_{i}", "Linear", {"units": 32}))


def namespace(n: int) -> None:
    ns = Namespace()
    for _ in range(n):
        ns.create("dense")


def plain_set(n: int) -> None:
    taken = set()
    for i in range(n):
        taken.add(f"dense_{i}")


def churn(n: int) -> None:
    g = Graph()
    ids = [g.add_node("Linear") for _ in range(n)]
    for node_id in ids[::2]:
        g.remove_node(node_id)
    for _ in range(n):
        g.add_node("Linear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 10000])
    args = parser.parse_args()
    print("bench_names: unique names per base name (best of 3 unless the run is long)")
    print(f"{'what':<34}{'N':>7}{'time (s)':>11}{'baseline (s)':>14}{'ratio':>8}")
    for label, fn, base in (("Graph.add_node (default names)", add_nodes, plain_networkx),
                            ("Namespace.create('dense')", namespace, plain_set),
                            ("add N, remove N/2, add N", churn, plain_networkx)):
        for n in args.sizes:
            repeat = 3 if n <= 2000 else 1
            t = best_of(lambda: fn(n), repeat)
            b = best_of(lambda: base(n), 3)
            print(f"{label:<34}{n:>7}{t:>11.3f}{b:>14.4f}{t / b:>8.1f}")
    t2000 = best_of(lambda: add_nodes(2000), 3)
    verdict = "ok" if t2000 < TARGET_2000_S else "OVER TARGET"
    print(f"2,000 default-named adds: {t2000:.3f} s (target < {TARGET_2000_S:.1f} s): {verdict}")


if __name__ == "__main__":
    main()
