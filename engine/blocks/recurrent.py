"""Recurrent layers: RNN, LSTM, GRU over (T, F) sequences, returning every step or the last."""
from __future__ import annotations

from .base import Block, Emit, Param, TensorSpec, init_helpers, init_lines, init_param, lit, need_rank, register

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _infer(p, ins):
    x = ins[0]
    need_rank(x, (2,), "(T, F) sequence", "insert a Reshape to (T, F), or a Permute if it is (F, T)")
    width = p["hidden_size"] * (2 if p["bidirectional"] else 1)
    return TensorSpec((x.shape[0], width) if p["return_sequences"] else (width,))


def _count(kind):
    def count(p, ins):
        gates, h = GATES[kind], p["hidden_size"]
        dirs = 2 if p["bidirectional"] else 1
        total = 0
        for layer in range(p["num_layers"]):
            n_in = ins[0].shape[-1] if layer == 0 else h * dirs
            total += dirs * (gates * h * (n_in + h) + (2 * gates * h if p["bias"] else 0))
        return total
    return count


def _emit(kind):
    def emit(p, ins):
        args = [str(ins[0].shape[-1]), str(p["hidden_size"])]
        if p["num_layers"] != 1:
            args.append(f"num_layers={p['num_layers']}")
        if kind == "RNN" and p["nonlinearity"] != "tanh":
            args.append(f"nonlinearity={lit(p['nonlinearity'])}")
        if not p["bias"]:
            args.append("bias=False")
        args.append("batch_first=True")
        if p["dropout"] and p["num_layers"] > 1:
            args.append(f"dropout={lit(p['dropout'])}")
        if p["bidirectional"]:
            args.append("bidirectional=True")
        helpers = init_helpers(p)
        if p["return_sequences"]:
            call = "{self}({0})[0]"
        elif p["bidirectional"]:
            call = "bidirectional_last({self}({0})[0])"
            helpers += ("bidirectional_last",)
        else:
            call = "{self}({0})[0][:, -1]"
        return Emit(init=f"nn.{kind}({', '.join(args)})", call=call, helpers=helpers, extra_init=init_lines(p))
    return emit


def _advice(p, ins):
    if p["dropout"] and p["num_layers"] == 1:
        return (("no-effect", "dropout only acts between stacked layers; set num_layers > 1 "
                              "or add a Dropout block after it"),)
    return ()


def _short(p):
    tail = "seq" if p["return_sequences"] else "last"
    return f"{p['hidden_size']}{' x2' if p['bidirectional'] else ''}, {tail}"


for _kind, _desc in (("RNN", "Elman recurrent layer (Keras: SimpleRNN)"),
                     ("LSTM", "Long short-term memory layer"),
                     ("GRU", "Gated recurrent unit layer")):
    _params = [
        Param("hidden_size", "int", 64, min=1, max=100_000, help="Features in the hidden state (Keras: units)."),
        Param("num_layers", "int", 1, min=1, max=64, help="Stacked recurrent layers."),
        Param("bidirectional", "bool", False, help="Also read the sequence backwards; doubles the output width."),
        Param("return_sequences", "bool", False,
              help="Output every step (T, H) instead of only the last step (H,)."),
        Param("dropout", "float", 0.0, min=0.0, max=1.0,
              help="Dropout between stacked layers (needs num_layers > 1)."),
        Param("bias", "bool", True, help="Learn bias terms."),
    ]
    if _kind == "RNN":
        _params.append(Param("nonlinearity", "choice", "tanh", choices=("tanh", "relu"), help="Activation."))
    _params.append(init_param(recurrent=True))
    register(Block(
        type=_kind, category="Recurrent", default_name=_kind.lower(),
        shape_rule="(T, F) -> (H,) last step, or (T, H) with return_sequences; "
                   "H = hidden_size, x2 if bidirectional",
        keras="SimpleRNN" if _kind == "RNN" else _kind,
        help=f"{_desc} over a batch-first (T, F) sequence; returns the last step (H,) or every step (T, H).",
        params=tuple(_params), infer=_infer, emit=_emit(_kind), count_params=_count(_kind), short=_short,
        advice=_advice,
    ))
