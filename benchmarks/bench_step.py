"""Training-step speed: Deepwire's compiled module against the same model written by hand.

For each starter template, builds `compile_graph(load_template(name))` and a hand-written
`nn.Module` with the same layers and forward, copies the compiled weights into it (so both
compute the same function; checked in eval mode), then times training steps
(forward + loss + backward + Adam step) on random data. The two models run in alternating
blocks of steps (the order flips every round) so that machine noise hits both alike; each
block gives one per-step time and the report is the median over blocks.

Target: compiled / hand-written <= 1.03 for every template.

    .venv/bin/python benchmarks/bench_step.py            # full run (~1-2 minutes)
    .venv/bin/python benchmarks/bench_step.py --quick    # a short run (~15 s)

Always exits 0: it is a report, not a test.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

try:
    from engine.compiler import compile_graph
    from engine.templates import load_template
except Exception as _exc:  # a report always exits 0: say what is broken
    print(f"bench_step: cannot import Deepwire's engine: {type(_exc).__name__}: {_exc}")
    sys.exit(0)

TARGET = 1.03


# ----------------------------------------------------------------------------- hand-written models
# Attribute names follow the generated code so that `load_state_dict` lines up by name.

class HandMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(784, 128)
        self.dense_1 = nn.Linear(128, 10)

    def forward(self, x):
        x = x.flatten(1)
        x = F.relu(self.dense(x))
        return self.dense_1(x)


class HandCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv2d = nn.Conv2d(3, 32, 3)
        self.max_pool2d = nn.MaxPool2d(2)
        self.conv2d_1 = nn.Conv2d(32, 64, 3)
        self.max_pool2d_1 = nn.MaxPool2d(2)
        self.dense = nn.Linear(64 * 30 * 30, 128)
        self.dense_1 = nn.Linear(128, 10)

    def forward(self, x):
        x = x * (1 / 255)
        x = self.max_pool2d(F.relu(self.conv2d(x)))
        x = self.max_pool2d_1(F.relu(self.conv2d_1(x)))
        x = F.relu(self.dense(x.flatten(1)))
        return F.softmax(self.dense_1(x), dim=-1)


class HandLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 64, batch_first=True)
        self.dense = nn.Linear(64, 32)
        self.dense_1 = nn.Linear(32, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        x = F.relu(self.dense(out[:, -1]))
        return self.dense_1(x)


class LearnedPositions(nn.Module):
    def __init__(self, length, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(length, dim) * 0.02)

    def forward(self, x):
        return x + self.weight[: x.size(1)]


class EncoderBlock(nn.Module):
    """A post-norm encoder block, as written by hand (the template's EncoderBlock module)."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(64, 4, dropout=0.1, batch_first=True)
        self.attention_dropout = nn.Dropout(0.1)
        self.norm = nn.LayerNorm(64)
        self.mlp = nn.Linear(64, 128)
        self.mlp_dropout = nn.Dropout(0.1)
        self.mlp_out = nn.Linear(128, 64)
        self.mlp_out_dropout = nn.Dropout(0.1)
        self.norm_1 = nn.LayerNorm(64)

    def forward(self, x):
        x = self.norm(x + self.attention_dropout(self.attention(x, x, x, need_weights=False)[0]))
        h = self.mlp_out(self.mlp_dropout(F.relu(self.mlp(x))))
        return self.norm_1(x + self.mlp_out_dropout(h))


class HandTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(1000, 64)
        self.positions = LearnedPositions(64, 64)
        self.encoder = nn.Sequential(EncoderBlock(), EncoderBlock())
        self.dense = nn.Linear(64, 2)

    def forward(self, x):
        x = self.encoder(self.positions(self.embedding(x)))
        return self.dense(x.mean(dim=1))


@dataclass
class Case:
    template: str
    hand: Callable[[], nn.Module]
    batch: int
    quick_batch: int
    make_input: Callable[[int], torch.Tensor]
    make_target: Callable[[int], torch.Tensor]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    rounds_scale: int = 1  # slow steps (1-2 per block) need more blocks for a stable median


CASES = [
    Case("fashion_mnist_mlp", HandMLP, 32, 32,
         lambda b: torch.rand(b, 28, 28), lambda b: torch.randint(0, 10, (b,)), F.cross_entropy),
    Case("image_cnn", HandCNN, 8, 4,
         lambda b: torch.rand(b, 3, 128, 128) * 255, lambda b: torch.randint(0, 10, (b,)), F.cross_entropy,
         rounds_scale=2),
    Case("sequence_lstm", HandLSTM, 32, 32,
         lambda b: torch.randn(b, 50, 8), lambda b: torch.randn(b, 1), F.mse_loss),
    Case("transformer_classifier", HandTransformer, 32, 16,
         lambda b: torch.randint(0, 1000, (b, 64)), lambda b: torch.randint(0, 2, (b,)), F.cross_entropy),
]


# ----------------------------------------------------------------------------- timing

def copy_weights(src: nn.Module, dst: nn.Module) -> str:
    """Load src's weights into dst: by name when the keys line up, else by order and shape."""
    state = src.state_dict()
    try:
        dst.load_state_dict(state, strict=True)
        return "by name"
    except RuntimeError:
        pass
    dst_state = dst.state_dict()
    if len(state) != len(dst_state) or any(a.shape != b.shape for a, b in zip(state.values(), dst_state.values())):
        return "NOT copied (layers differ)"
    dst.load_state_dict(dict(zip(dst_state.keys(), state.values())), strict=True)
    return "by order"


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    a.eval(), b.eval()
    with torch.no_grad():
        d = (a(x) - b(x)).abs().max().item()
    a.train(), b.train()
    return d


def make_stepper(model: nn.Module, batches, loss_fn):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    state = {"i": 0}

    def step():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return step


def time_block(step, seconds: float) -> tuple[float, int]:
    """Run `step` until `seconds` have passed (at least once); (seconds per step, steps run)."""
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        step()
        n += 1
        t = time.perf_counter()
        if t >= end:
            return (t - t0) / n, n


def interleaved(steppers: dict[str, Callable[[], None]], rounds: int, block_s: float, warmup: int = 3):
    """Per-step times of each stepper, one value per block of ~block_s; blocks alternate and the
    order flips each round. Blocks are timed by duration, not by count, so a noisy moment while
    calibrating cannot leave a block too short to mean anything."""
    for step in steppers.values():
        for _ in range(warmup):
            step()
    names = list(steppers)
    times: dict[str, list[float]] = {k: [] for k in names}
    counts: list[int] = []
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for k in order:
            per_step, n = time_block(steppers[k], block_s)
            times[k].append(per_step)
            counts.append(n)
    return times, int(statistics.median(counts))


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:8.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run (fewer, shorter blocks)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--rounds", type=int, default=None, help="blocks per model (default 50, quick 8)")
    ap.add_argument("--only", nargs="*", help="templates to run (default: all four)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    rounds = args.rounds or (8 if args.quick else 50)
    block_s = 0.04 if args.quick else 0.1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds of "
          f"~{block_s * 1e3:.0f} ms blocks per model, interleaved; medians of per-step time")
    print()

    rows = []
    for case in CASES:
        if args.only and case.template not in args.only:
            continue
        torch.manual_seed(0)
        try:
            compiled = compile_graph(load_template(case.template))
        except Exception as exc:  # a report: say what broke and go on
            print(f"{case.template}: could not compile: {type(exc).__name__}: {exc}")
            rows.append((case.template, None, None, None, "compile failed", None, None))
            continue
        hand = case.hand()
        how = copy_weights(compiled, hand)
        b = case.quick_batch if args.quick else case.batch
        torch.manual_seed(1)
        batches = [(case.make_input(b), case.make_target(b)) for _ in range(4)]
        diff = max_diff(compiled, hand, batches[0][0]) if how != "NOT copied (layers differ)" else math.nan
        steppers = {
            "compiled": make_stepper(compiled, batches, case.loss),
            "hand": make_stepper(hand, batches, case.loss),
        }
        times, n = interleaved(steppers, rounds * case.rounds_scale, block_s)
        med_c = statistics.median(times["compiled"])
        med_h = statistics.median(times["hand"])
        ratio = med_c / med_h
        # per-round ratios show how much of the difference is noise
        per_round = sorted(c / h for c, h in zip(times["compiled"], times["hand"]))
        q1 = per_round[len(per_round) // 4]
        q3 = per_round[(3 * len(per_round)) // 4]
        paired = statistics.median(per_round)
        rows.append((case.template, b, med_c, med_h, how, ratio, (q1, q3, n, diff, paired)))
        print(f"  {case.template}: done (median {n} steps per block)", flush=True)

    print()
    head = (f"{'template':<24}{'batch':>6}{'compiled ms':>13}{'hand ms':>10}{'ratio':>8}"
            f"{'paired':>8}{'IQR of paired':>15}{'target':>9}  {'result':<7}{'weights':<10}{'max |diff|':>11}")
    print(head)
    print("-" * len(head))
    missed = []
    for name, b, c, h, how, ratio, extra in rows:
        if ratio is None:
            print(f"{name:<24}{'':>6}{'-':>13}{'-':>10}{'-':>8}{'-':>8}{'':>15}{'<= 1.03':>9}  {'n/a':<7}{how}")
            continue
        q1, q3, n, diff, paired = extra
        ok = ratio <= TARGET
        if not ok:
            missed.append(name + (" (paired ratio within target: likely noise)" if paired <= TARGET else ""))
        print(f"{name:<24}{b:>6}{fmt_ms(c):>13}{fmt_ms(h):>10}{ratio:>8.3f}"
              f"{paired:>8.3f}{f'{q1:.3f}-{q3:.3f}':>15}{'<= 1.03':>9}  "
              f"{'ok' if ok else 'MISSED':<7}{how:<10}{diff:>11.2e}")
    print("ratio = median compiled step / median hand-written step (the checked figure); paired = median of the")
    print("per-round ratios (each round times both models back to back), with its interquartile range.")
    print("max |diff| = largest output difference in eval mode after copying the weights (0 = same function).")
    print()
    if missed:
        print(f"Target missed for: {', '.join(missed)}. The machine is noisy; rerun (or raise --rounds) "
              "before concluding, and compare the paired/IQR columns: a ratio inside a wide IQR around 1.0 is noise.")
    else:
        print("All templates within the target (compiled / hand-written <= 1.03).")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # always exit 0: it is a report
        import traceback

        traceback.print_exc()
        print(f"bench_step failed: {exc}")
    sys.exit(0)
