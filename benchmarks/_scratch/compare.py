import sys, time, statistics
sys.path.insert(0,'benchmarks'); sys.path.insert(0,'.'); sys.path.insert(0,'benchmarks/_scratch')
import bench_graph_scale as b
import fixes
from engine.graph import Graph
from engine.codegen import generate
from engine.compiler import load_source
import analysis_fixed as AF, engine.analysis as A

def run(text, on):
    fixes.apply(on)
    an = AF.analyse if on else A.analyse
    b.clear_generated_cache()
    r = {}
    t = time.perf_counter; c = time.process_time
    w0, c0 = t(), c(); g = Graph.from_json(text); w1, c1 = t(), c(); r["load"] = (w1-w0, c1-c0)
    a = an(g); w2, c2 = t(), c(); r["analyse"] = (w2-w1, c2-c1)
    src, info = generate(g, a); w3, c3 = t(), c(); r["generate"] = (w3-w2, c3-c2)
    cls = load_source(src, info.class_name); w4, c4 = t(), c(); r["exec"] = (w4-w3, c4-c3)
    m = cls(); w5, c5 = t(), c(); r["instantiate"] = (w5-w4, c5-c4)
    r["total"] = (w5-w0, c5-c0)
    fixes.apply(False)
    return r, src

for kind in ("chain", "dag"):
    text = getattr(b, "build_"+kind)(1000).to_json()
    res = {False: [], True: []}
    r0, s0 = run(text, False); r1, s1 = run(text, True); assert s0 == s1
    for i in range(8):
        for on in ((False, True) if i % 2 == 0 else (True, False)):
            res[on].append(run(text, on)[0])
    for on in (False, True):
        print(kind, "patched" if on else "current", "  ".join(
            f"{k} {statistics.median(r[k][0] for r in res[on])*1e3:.1f}/{statistics.median(r[k][1] for r in res[on])*1e3:.1f}" for k in res[on][0]), "(wall/cpu ms)")

import analysis_fixed as af2, engine.analysis as A2
for kind in ("chain", "dag"):
    g = getattr(b, "build_" + kind)(200)
    t1 = []; t2 = []
    for _ in range(200):
        t0 = time.perf_counter(); A2.analyse(g); t1.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); af2.analyse(g); t2.append(time.perf_counter() - t0)
    print(kind, 200, f"analyse current {statistics.median(t1)*1e3:.2f} ms  patched {statistics.median(t2)*1e3:.2f} ms")
