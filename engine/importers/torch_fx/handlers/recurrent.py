"""RNN, LSTM and GRU. A recurrent layer's call returns (output, state); which block it becomes is decided by
what forward reads from it: the output sequence (return_sequences) or the last step (out[:, -1], h[-1],
h.squeeze(0), Deepwire's bidirectional_last). One layer can be used in one of those two ways."""
from __future__ import annotations

from torch import nn

from ..registry import helper_function, module
from ..values import Pending, Unsupported

KINDS = {nn.RNN: "RNN", nn.LSTM: "LSTM", nn.GRU: "GRU"}


class Rnn(Pending):
    what = "a recurrent layer's (output, state) pair"

    def __init__(self, fx_node, module, inputs):
        self.fx_node, self.module, self.inputs = fx_node, module, inputs
        self.node_id: str | None = None
        self.mode: str | None = None   # "seq" or "last"

    def node(self, t, mode: str) -> str:
        """The layer's block, returning the sequence ("seq") or the last step ("last")."""
        if self.node_id is not None:
            if self.mode != mode:
                raise Unsupported(f"uses both the sequence and the last step of self.{self.fx_node.target}; "
                                  "a Deepwire recurrent block returns one of them")
            return self.node_id
        m = self.module
        kind = KINDS.get(type(m))
        if kind is None:
            raise Unsupported("is a recurrent layer Deepwire does not know")
        params = {"hidden_size": m.hidden_size, "num_layers": m.num_layers, "bidirectional": m.bidirectional,
                  "return_sequences": mode == "seq", "dropout": float(m.dropout) if m.num_layers > 1 else 0.0,
                  "bias": m.bias}
        if kind == "RNN":
            params["nonlinearity"] = m.nonlinearity
        name = t.module_name(self.fx_node.target)
        if m.dropout and m.num_layers == 1:
            t.notes.append(f"{kind} '{name}': dropout={m.dropout} does nothing with one layer and is dropped")
        self.node_id = t.add(kind, name, params, [t.value(self.inputs[0])], m.state_dict(), self.fx_node)
        self.mode = mode
        return self.node_id

    def item(self, t, index):
        if index == 0:
            return RnnSeq(self)
        if index == 1:
            return RnnH(self) if not isinstance(self.module, nn.LSTM) else RnnState(self)
        return None

    def unused(self, t):
        if self.node_id is None:
            return (f"{t.line(self.fx_node)}: the output of self.{self.fx_node.target} is never used as a sequence "
                    "or a last step")
        return None


class RnnSeq(Pending):
    what = "a recurrent layer's output sequence"

    def __init__(self, rnn: Rnn):
        self.rnn = rnn

    def as_tensor(self, t):
        return self.rnn.node(t, "seq")

    def item(self, t, index):
        if not is_last_step(index):
            return None
        if self.rnn.module.bidirectional:
            raise Unsupported("takes the last step of a bidirectional layer, whose backward half ends at step 0 "
                              "(use Deepwire's bidirectional_last, or return_sequences)")
        return self.rnn.node(t, "last")


class RnnState(Pending):
    what = "a recurrent layer's final state"

    def __init__(self, rnn: Rnn):
        self.rnn = rnn

    def item(self, t, index):
        if index == 0:
            return RnnH(self.rnn)
        raise Unsupported("reads an LSTM's cell state, which no Deepwire block returns")


class RnnH(Pending):
    what = "a recurrent layer's final hidden state"

    def __init__(self, rnn: Rnn):
        self.rnn = rnn

    def item(self, t, index):
        m = self.rnn.module
        layers = m.num_layers * (2 if m.bidirectional else 1)
        if index in (-1, layers - 1) and not m.bidirectional:
            return self.rnn.node(t, "last")
        raise Unsupported("reads a final state Deepwire cannot express (only the last layer of a unidirectional "
                          "layer)")

    def squeezed(self, t):
        m = self.rnn.module
        return self.rnn.node(t, "last") if m.num_layers == 1 and not m.bidirectional else None


def is_last_step(index) -> bool:
    full = slice(None, None, None)
    return (isinstance(index, tuple) and len(index) in (2, 3) and index[0] == full and index[1] == -1
            and all(i == full for i in index[2:]))


@module(nn.RNNBase, subclasses=True, extra_args=True)
def recurrent(t, n, m):
    if not m.batch_first:
        raise Unsupported("uses batch_first=False: Deepwire's sequences are batch-first (B, T, F); build it with "
                          "batch_first=True")
    if getattr(m, "proj_size", 0):
        raise Unsupported("with proj_size has no Deepwire block")
    if len(n.args) > 1 or n.kwargs:
        raise Unsupported("is given an initial state; Deepwire's recurrent blocks start from zeros")
    return Rnn(n, m, [n.args[0]])


@helper_function("bidirectional_last")
def bidirectional_last(t, n):
    v = t.env.get(n.args[0])
    if isinstance(v, RnnSeq) and v.rnn.module.bidirectional:
        return v.rnn.node(t, "last")
    raise Unsupported("is applied to something other than a bidirectional recurrent layer's output")
