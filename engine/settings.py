"""Training settings: `TrainConfig` (what a run is asked to do, checked by `validate`), the
errors a run reports to the user, and the devices a run may ask for.

Apart from the training loop so that the project file, which stores these settings, and the
designer's settings form need not load the loop (nor the compiler) to read or check them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "one_cycle", "plateau")
LOSSES = ("auto", "cross_entropy", "binary_cross_entropy", "mse", "mae")
MAX_SEED = 2**31 - 1          # scikit-learn splits take seeds below 2**32 (a setting and one above it)


class TrainingError(RuntimeError):
    """A run that cannot start or had to end. The message is for the user."""


class ConfigError(TrainingError):
    """A training setting out of range."""


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9          # SGD momentum; RMSprop momentum
    nesterov: bool = False
    schedule: str = "none"
    step_size: int = 10            # step schedule: epochs between decays
    gamma: float = 0.1             # step schedule / plateau: decay factor
    plateau_patience: int = 3
    grad_clip: float = 0.0         # max gradient norm; 0 = off
    loss: str = "auto"
    val_split: float = 0.1
    test_split: float = 0.2
    early_stopping: bool = False
    patience: int = 5
    restore_best: bool = True      # end with the weights of the best validation epoch
    seed: int = 0
    device: str = "auto"
    amp: bool = False              # mixed precision (CUDA only)
    checkpoint_dir: str | None = None

    def validate(self) -> TrainConfig:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float"):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{f.name} must be a number, not {_shown(value)}")
                if f.type == "int" and not isinstance(value, int):
                    raise ConfigError(f"{f.name} must be a whole number, not {_shown(value)}")
                if isinstance(value, float) and not math.isfinite(value):
                    raise ConfigError(f"{f.name} must be a finite number, not {value}")
            elif f.type == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be true or false, not {_shown(value)}")
            elif f.type == "str" and not isinstance(value, str):
                raise ConfigError(f"{f.name} must be text, not {_shown(value)}")
            elif f.type == "str | None" and value is not None and not isinstance(value, str):
                raise ConfigError(f"{f.name} must be text or null, not {_shown(value)}")
        need(1 <= self.epochs <= 100_000, "epochs must be between 1 and 100000")
        need(1 <= self.batch_size <= 1_000_000, "batch size must be between 1 and 1000000")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        need(math.isfinite(self.lr) and 0 < self.lr <= 10, "learning rate must be above 0 and at most 10")
        need(0 <= self.weight_decay <= 1, "weight decay must be between 0 and 1")
        need(0 <= self.momentum < 1, "momentum must be at least 0 and below 1")
        need(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}")
        need(self.step_size >= 1 and 0 < self.gamma <= 1, "step schedule needs step_size >= 1 and 0 < gamma <= 1")
        need(self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}")
        need(0 <= self.val_split < 1 and 0 <= self.test_split < 1 and self.val_split + self.test_split < 0.9,
             "validation and test fractions must be below 1 together (leave at least 10% to train on)")
        need(self.patience >= 1 and self.plateau_patience >= 1, "patience must be at least 1")
        need(self.grad_clip >= 0, "gradient clipping must be 0 (off) or positive")
        need(0 <= self.seed <= MAX_SEED, f"seed must be a whole number from 0 to {MAX_SEED}")
        need(self.nesterov is False or (self.optimizer == "sgd" and self.momentum > 0),
             "Nesterov momentum needs the SGD optimizer with momentum > 0")
        resolve_device(self.device)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError("training settings must be a mapping")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).validate()


# ----------------------------------------------------------------------------- devices

def available_devices() -> list[dict]:
    """What can really train here: CPU, each CUDA GPU (name, memory), MPS."""
    out = [{"id": "cpu", "name": "CPU", "memory": None}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append({"id": f"cuda:{i}", "name": props.name, "memory": props.total_memory})
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append({"id": "mps", "name": "Apple GPU (MPS)", "memory": None})
    return out


def resolve_device(spec: str) -> torch.device:
    """'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ConfigError("device 'mps' is not available on this machine: use 'auto' or 'cpu'")
        return torch.device("mps")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = 0
        if spec != "cuda":
            try:
                index = int(spec.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"device {spec!r}: write cuda:N with N a GPU number") from None
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} asked for, but no CUDA GPU is available: use 'auto' or 'cpu'")
        if not 0 <= index < torch.cuda.device_count():
            raise ConfigError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        return torch.device("cuda", index)
    raise ConfigError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")


__all__ = ["LOSSES", "MAX_SEED", "OPTIMIZERS", "SCHEDULES", "ConfigError", "TrainConfig", "TrainingError",
           "available_devices", "resolve_device"]
