'''Source of the small helpers generated modules may need, each written once.

The code generator copies a helper into a model's source only when one of its blocks uses
it, in the order of HELPERS, so the exported file stays standalone and short.
'''
from __future__ import annotations

HELPERS: dict[str, str] = {}


def _helper(name: str, source: str) -> None:
    HELPERS[name] = source.strip("\n") + "\n"


_helper("init_weights", '''
def init_weights(module: nn.Module, scheme: str) -> None:
    """Re-initialise a layer's weight matrices and kernels; zero its biases."""
    for name, param in module.named_parameters():
        if param.dim() < 2:
            if "bias" in name:
                nn.init.zeros_(param)
        elif scheme == "orthogonal" and "weight_hh" in name:
            nn.init.orthogonal_(param)
        elif scheme in ("xavier_uniform", "orthogonal"):
            nn.init.xavier_uniform_(param)
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(param)
        elif scheme == "kaiming_uniform":
            nn.init.kaiming_uniform_(param, nonlinearity="relu")
        elif scheme == "kaiming_normal":
            nn.init.kaiming_normal_(param, nonlinearity="relu")
''')

_helper("causal_mask", '''
def causal_mask(n_query: int, n_key: int, device: torch.device) -> torch.Tensor:
    """True where attention is not allowed: query i sees keys 0..i only."""
    return torch.ones(n_query, n_key, dtype=torch.bool, device=device).triu(1)
''')

_helper("bidirectional_last", '''
def bidirectional_last(seq: torch.Tensor) -> torch.Tensor:
    """Final states of a bidirectional layer: the forward half's last step, the backward half's first."""
    half = seq.size(-1) // 2
    return torch.cat([seq[:, -1, :half], seq[:, 0, half:]], dim=-1)
''')

_helper("Normalization", '''
class Normalization(nn.Module):
    """Standardises inputs with a mean and std fitted from the training data (saved as buffers)."""

    def __init__(self, shape: tuple[int, ...], eps: float = 1e-7):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))
        self.eps = eps

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the statistics from a batch of training samples (N, *shape)."""
        dims = [0] + [i + 1 for i, size in enumerate(self.mean.shape) if size == 1]
        std = x.std(dim=dims, unbiased=False).reshape(self.std.shape)
        self.mean.copy_(x.mean(dim=dims).reshape(self.mean.shape))
        # a constant feature keeps std 1, so it passes through instead of exploding
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (self.std + self.eps)
''')

_helper("PositionalEmbedding", '''
class PositionalEmbedding(nn.Module):
    """Adds a position vector to each step of a (B, T, E) sequence: learned, or fixed sinusoids."""

    def __init__(self, length: int, dim: int, learned: bool = True):
        super().__init__()
        if learned:
            self.weight = nn.Parameter(torch.randn(length, dim) * 0.02)
        else:
            position = torch.arange(length).unsqueeze(1)
            rate = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
            table = torch.zeros(length, dim)
            table[:, 0::2] = torch.sin(position * rate)
            table[:, 1::2] = torch.cos(position * rate)[:, : dim // 2]
            self.register_buffer("weight", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.size(1)]
''')

_helper("RandomFlip", '''
class RandomFlip(nn.Module):
    """While training, flips each image with probability 0.5; the identity in evaluation."""

    def __init__(self, mode: str = "horizontal"):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.mode != "vertical":
            flip = torch.rand(x.size(0), 1, 1, 1, device=x.device) < 0.5
            x = torch.where(flip, x.flip(-1), x)
        if self.mode != "horizontal":
            flip = torch.rand(x.size(0), 1, 1, 1, device=x.device) < 0.5
            x = torch.where(flip, x.flip(-2), x)
        return x
''')

_helper("random_affine", '''
def random_affine(x: torch.Tensor, angle: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor,
                  mode: str = "bilinear") -> torch.Tensor:
    """Rotates (radians) and shifts (fractions of the size) each image of a (B, C, H, W) batch."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, -2 * shift_x], dim=1),
                         torch.stack([sin, cos, -2 * shift_y], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
''')

_helper("RandomRotation", '''
class RandomRotation(nn.Module):
    """While training, rotates each image by a random angle in [-degrees, degrees]."""

    def __init__(self, degrees: float):
        super().__init__()
        self.degrees = degrees

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.degrees == 0:
            return x
        n = x.size(0)
        angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(self.degrees)
        zero = torch.zeros(n, device=x.device)
        return random_affine(x, angle, zero, zero)
''')

_helper("RandomTranslation", '''
class RandomTranslation(nn.Module):
    """While training, shifts each image by up to a fraction of its height and width."""

    def __init__(self, height_factor: float, width_factor: float):
        super().__init__()
        self.height_factor = height_factor
        self.width_factor = width_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n = x.size(0)
        shift_y = (torch.rand(n, device=x.device) * 2 - 1) * self.height_factor
        shift_x = (torch.rand(n, device=x.device) * 2 - 1) * self.width_factor
        return random_affine(x, torch.zeros(n, device=x.device), shift_y, shift_x)
''')

_helper("RandomCrop", '''
class RandomCrop(nn.Module):
    """While training, pads by `padding` zeros and crops a random window of the original size."""

    def __init__(self, padding: int):
        super().__init__()
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.padding == 0:
            return x
        n, h, w = x.size(0), x.size(-2), x.size(-1)
        dy = torch.randint(-self.padding, self.padding + 1, (n,), device=x.device).to(x.dtype)
        dx = torch.randint(-self.padding, self.padding + 1, (n,), device=x.device).to(x.dtype)
        zero = torch.zeros(n, device=x.device, dtype=x.dtype)
        return random_affine(x, zero, dy / h, dx / w, mode="nearest")
''')

_helper("GaussianNoise", '''
class GaussianNoise(nn.Module):
    """While training, adds zero-mean Gaussian noise; the identity in evaluation."""

    def __init__(self, stddev: float):
        super().__init__()
        self.stddev = stddev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.stddev == 0:
            return x
        return x + torch.randn_like(x) * self.stddev
''')

_helper("LayerNorm2d", '''
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) tensor, at every position (as in ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
''')

DEPENDS = {"RandomRotation": ("random_affine",), "RandomTranslation": ("random_affine",),
           "RandomCrop": ("random_affine",)}
NEEDS_MATH = {"PositionalEmbedding", "RandomRotation"}


def helper_sources(names: set[str]) -> tuple[list[str], bool]:
    """The helpers `names` need (dependencies included), in a fixed order; and whether math is used."""
    wanted = set(names)
    for name in names:
        wanted.update(DEPENDS.get(name, ()))
    ordered = [HELPERS[n] for n in HELPERS if n in wanted]
    return ordered, bool(wanted & NEEDS_MATH)
