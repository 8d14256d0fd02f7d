"""Learned tensors used inside forward: class tokens, layer scale, and stochastic depth (issue #16).

Each learned tensor is an nn.Parameter of a small helper module, copied into the generated source,
so it trains, is saved in the state dict and counts in the parameter count. Learned positions
are PositionalEmbedding (attention.py): its table takes the length of its input, so after a
ClassToken it is ViT's (T + 1, D) pos_embed.
"""
from __future__ import annotations

from .attention import SEQ_HINT
from .base import Block, Emit, Param, ShapeError, TensorSpec, lit, need_rank, register
from .helpers import _helper

_helper("ClassToken", '''
class ClassToken(nn.Module):
    """Prepends a learned token to each (B, T, D) sequence: (B, T + 1, D), ViT's cls_token."""

    def __init__(self, dim: int, init: str = "zeros"):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, dim))
        if init == "trunc_normal":
            nn.init.trunc_normal_(self.token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(x.size(0), -1, -1), x], dim=1)
''')

_helper("LayerScale", '''
class LayerScale(nn.Module):
    """Multiplies by a learned per-channel scale `gamma`, initialised small (CaiT, ConvNeXt)."""

    def __init__(self, shape: tuple[int, ...], init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full(shape, init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
''')

_helper("StochasticDepth", '''
class StochasticDepth(nn.Module):
    """While training, drops a residual branch with probability p, per sample ("row") or for the whole
    batch ("batch"), scaling what is kept by 1 / (1 - p); the identity in evaluation."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        size = [1] * x.dim()
        if self.mode == "row":
            size[0] = x.size(0)
        mask = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
        if keep > 0.0:
            mask.div_(keep)
        return x * mask
''')


# ----------------------------------------------------------------------------- ClassToken

def _token_infer(p, ins):
    x = ins[0]
    need_rank(x, (2,), "(T, D) sequence", SEQ_HINT + ", e.g. a Conv2d patch embedding, Flatten of H, W "
              "and a Permute to (T, D)")
    return TensorSpec((x.shape[0] + 1, x.shape[1]))


def _token_emit(p, ins):
    init = "" if p["init"] == "zeros" else f", init={lit(p['init'])}"
    return Emit(init=f"ClassToken({ins[0].shape[1]}{init})", call="{self}({0})", helpers=("ClassToken",))


register(Block(
    type="ClassToken", category="Attention", default_name="class_token",
    shape_rule="(T, D) -> (T + 1, D), the learned token first",
    help="Prepends a learned (1, D) token to a (T, D) sequence, as ViT does; after the encoder, a Select "
         "of dim 0, index 0 takes it out as the sequence's summary. Follow it with a PositionalEmbedding "
         "(learned), whose table takes the (T + 1, D) length: ViT's pos_embed "
         "(PyTorch: timm's cls_token, torch.cat([token.expand(B, -1, -1), x], dim=1); Keras: no layer).",
    params=(Param("init", "choice", "zeros", label="Initialisation", choices=("zeros", "trunc_normal"),
                  help="'zeros' (torchvision ViT) or 'trunc_normal': a truncated normal with std 0.02 "
                       "(timm)."),),
    infer=_token_infer, emit=_token_emit,
    count_params=lambda p, ins: ins[0].shape[1],
    short=lambda p: "" if p["init"] == "zeros" else p["init"],
))


# ----------------------------------------------------------------------------- LayerScale

def _scale_shape(p, x: TensorSpec) -> tuple[int, ...]:
    """gamma's shape: (D,) along the last dimension, or (C, 1, ...) along the first."""
    if p["layout"] == "channels_last" or x.rank == 1:
        return (x.shape[-1],)
    return (x.shape[0],) + (1,) * (x.rank - 1)


def _scale_infer(p, ins):
    if ins[0].rank < 1:
        raise ShapeError("needs an input with at least one dimension", kind="rank")
    return ins[0]


register(Block(
    type="LayerScale", category="Core", default_name="layer_scale",
    shape_rule="S -> S, each channel times its learned scale (the last dimension, or C of (C, ...))",
    help="Multiplies each channel by a learned scale gamma that starts small, so a residual branch starts "
         "close to the identity: (T, D) and (F,) scale the last dimension ('channels_last': CaiT, timm "
         "transformers); (C, H, W) and (C, L) scale C ('channels_first': ConvNeXt) "
         "(PyTorch: timm LayerScale, torchvision ConvNeXt's layer_scale; Keras: LayerScale of "
         "keras.applications.convnext).",
    params=(
        Param("init_value", "float", 1e-5, label="Initial value", min=0.0, max=1000.0,
              help="gamma's starting value for every channel (ConvNeXt: 1e-6; CaiT: 1e-5 to 0.1; "
                   "Keras: init_values)."),
        Param("layout", "choice", "channels_last", choices=("channels_last", "channels_first"),
              help="'channels_last': one scale per entry of the last dimension, for (T, D); "
                   "'channels_first': one per channel C, for (C, H, W) or (C, L)."),
    ),
    infer=_scale_infer,
    emit=lambda p, ins: Emit(init=f"LayerScale({lit(_scale_shape(p, ins[0]))}, {lit(p['init_value'])})",
                             call="{self}({0})", helpers=("LayerScale",)),
    count_params=lambda p, ins: _scale_shape(p, ins[0])[0],
    short=lambda p: f"{p['init_value']:g}" + (", C first" if p["layout"] == "channels_first" else ""),
))


# ----------------------------------------------------------------------------- StochasticDepth

register(Block(
    type="StochasticDepth", category="Core", default_name="drop_path",
    shape_rule="S -> S",
    help="Drop path: while training, zeroes a whole sample's residual branch with probability p and scales "
         "the kept ones by 1 / (1 - p); the identity in evaluation. Put it at the end of a branch, before "
         "the Add that joins the shortcut (PyTorch: torchvision.ops.StochasticDepth, timm DropPath; "
         "Keras: keras_cv.layers.DropPath).",
    params=(
        Param("p", "float", 0.1, label="Probability (p)", min=0.0, max=1.0,
              help="Probability of dropping the branch (Keras: rate)."),
        Param("mode", "choice", "row", choices=("row", "batch"),
              help="'row': each sample is dropped on its own; 'batch': the whole batch at once."),
    ),
    infer=lambda p, ins: ins[0],
    emit=lambda p, ins: Emit(init=f"StochasticDepth({lit(p['p'])}" + ("" if p["mode"] == "row" else
                                                                        f", {lit(p['mode'])}") + ")",
                             call="{self}({0})", helpers=("StochasticDepth",)),
    short=lambda p: f"p={p['p']:g}" + ("" if p["mode"] == "row" else ", batch"),
))
