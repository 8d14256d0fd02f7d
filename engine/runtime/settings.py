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


@dataclass(frozen=True)
class Setting:
    """One training setting, declared once: TrainConfig's field, `validate`'s rule, the CLI's flag, the
    exported train.py's Config field and comment, and the Training panel's widget all come from it.

    kind: "int", "float", "bool", "choice" (one of `choices`), "str" or "path" (text or None).
    low / high: the bounds (None: unbounded); low_open / high_open: the bound itself is refused.
    label: the Training panel's row ("" keeps it out of the form); flag: the `train` command's option
    (None: none); export: written into the exported train.py's Config. decimals / step: the panel's
    spin box. message: what `validate` says when the value is out of its bounds or choices.
    """
    name: str
    kind: str
    default: object
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    help: str = ""
    flag: str | None = None
    label: str = ""
    low_open: bool = False
    high_open: bool = False
    decimals: int = 2
    step: float = 1.0
    export: bool = True
    message: str = ""

    @property
    def python_type(self) -> str:
        """The type as TrainConfig and the exported Config write it."""
        return {"choice": "str", "path": "str | None"}.get(self.kind, self.kind)

    @property
    def described(self) -> str:
        """The help with the choices: CLI help, exported comment, tooltip."""
        if self.kind == "choice":
            *head, last = self.choices
            return f"{self.help}: {', '.join(head)} or {last}"
        return self.help

    def accepts(self, value) -> bool:
        """Within the bounds / among the choices (the kind is checked apart)."""
        if self.kind == "choice":
            return value in self.choices
        if self.kind in ("int", "float"):
            if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
                return False
            if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
                return False
        return True

    def out_of_range(self) -> str:
        if self.message:
            return self.message
        if self.kind == "choice":
            return f"{self.name} must be one of {', '.join(self.choices)}"
        low = "" if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low}"
        high = "" if self.high is None else f"{'below' if self.high_open else 'at most'} {self.high}"
        return f"{self.name} must be {' and '.join(t for t in (low, high) if t)}"


MIN_TRAIN_FRACTION = 0.1     # validation and test splits together leave at least this much to train on

SETTINGS: tuple[Setting, ...] = (
    Setting("epochs", "int", 10, 1, 100_000, help="passes over the training split", flag="--epochs",
            label="Epochs", message="epochs must be between 1 and 100000"),
    Setting("batch_size", "int", 32, 1, 1_000_000, help="samples per step, per process under torchrun",
            flag="--batch-size", label="Batch size", message="batch size must be between 1 and 1000000"),
    Setting("optimizer", "choice", "adam", choices=OPTIMIZERS, help="the optimizer",
            flag="--optimizer", label="Optimizer"),
    Setting("lr", "float", 1e-3, 0, 10, low_open=True, help="learning rate: the step size of the optimizer",
            flag="--lr", label="Learning rate", decimals=6, step=1e-4,
            message="learning rate must be above 0 and at most 10"),
    Setting("weight_decay", "float", 0.0, 0, 1, help="L2 penalty on the weights (0: off)", flag="--weight-decay",
            label="Weight decay", decimals=6, step=1e-4, message="weight decay must be between 0 and 1"),
    Setting("momentum", "float", 0.9, 0, 1, high_open=True, help="SGD and RMSprop momentum", flag="--momentum",
            decimals=3, step=0.01, message="momentum must be at least 0 and below 1"),
    Setting("nesterov", "bool", False, help="SGD: Nesterov momentum", flag="--nesterov"),
    Setting("schedule", "choice", "none", choices=SCHEDULES, help="how the learning rate changes during the run",
            flag="--schedule", label="LR schedule"),
    Setting("step_size", "int", 10, 1, help="step schedule: epochs between decays", flag="--step-size",
            message="step schedule needs step_size >= 1 and 0 < gamma <= 1"),
    Setting("gamma", "float", 0.1, 0, 1, low_open=True, help="step and plateau schedules: decay factor",
            flag="--gamma", decimals=4, step=0.01, message="step schedule needs step_size >= 1 and 0 < gamma <= 1"),
    Setting("plateau_patience", "int", 3, 1, help="plateau schedule: epochs without improvement before a decay",
            flag="--plateau-patience", message="patience must be at least 1"),
    Setting("grad_clip", "float", 0.0, 0, help="largest gradient norm; 0: no clipping", flag="--grad-clip",
            decimals=3, step=0.1, message="gradient clipping must be 0 (off) or positive"),
    Setting("loss", "choice", "auto", choices=LOSSES, help="the loss (auto: from the task)",
            flag="--loss"),
    Setting("val_split", "float", 0.1, 0, 1, high_open=True, help="fraction of the samples held out for validation",
            flag="--val-split", label="Validation split", step=0.05,
            message="validation and test fractions must be below 1 together (leave at least 10% to train on)"),
    Setting("test_split", "float", 0.2, 0, 1, high_open=True,
            help="fraction held out for the final test (unless the data has its own)", flag="--test-split",
            step=0.05, message="validation and test fractions must be below 1 together (leave at least 10% to "
                               "train on)"),
    Setting("early_stopping", "bool", False, help="stop after `patience` epochs without a better validation loss",
            flag="--early-stopping", label="Stop when validation stops improving"),
    Setting("patience", "int", 5, 1, help="early stopping: epochs without improvement before stopping",
            flag="--patience", label="Patience", message="patience must be at least 1"),
    Setting("restore_best", "bool", True, help="end with the weights of the best validation epoch",
            flag="--restore-best"),
    Setting("seed", "int", 0, 0, MAX_SEED, help="seeds the initial weights, the split and the batch order",
            flag="--seed", label="Seed", message=f"seed must be a whole number from 0 to {MAX_SEED}"),
    Setting("start_from", "choice", "fresh", choices=("fresh", "weights"),
            help="the weights a run starts from: fresh ones (seeded), or the weights loaded into the project "
                 "(fine-tuning)", flag="--start-from", label="Start from"),
    Setting("device", "str", "auto", help="auto, cpu, cuda, cuda:N or mps", flag="--device", label="Device"),
    Setting("amp", "bool", False, help="mixed precision (CUDA only)", flag="--amp"),
    Setting("memory_budget", "float", 0.0, 0, 1_000_000, help="GiB the data may take as whole tensors on the "
            "device; larger data is streamed batch by batch (0: auto, a quarter of the memory)",
            flag="--memory-budget", decimals=1, step=0.5, message="memory budget must be 0 (auto) or a number of GiB"),
    Setting("data_workers", "int", -1, -1, 64, help="processes reading streamed data (-1: auto, 0: none)",
            flag="--data-workers", message="data workers must be -1 (auto) or from 0 to 64"),
    Setting("bad_images", "choice", "stop", choices=("stop", "skip"),
            help="an unreadable image in an image folder: stop, naming it, or skip it and count it",
            flag="--bad-images"),
    # the CLI's --checkpoint-dir is its own (a project file never chooses where files are written)
    Setting("checkpoint_dir", "path", None, help="also write each epoch's weights to this folder", export=False),
)
SETTING = {s.name: s for s in SETTINGS}


def setting_bounds(name: str, config: TrainConfig | None = None) -> tuple[float | None, float | None]:
    """A number setting's (low, high), narrowed by the rules between settings for the others in `config`
    (the validation split leaves room for the test split and the training fraction). Bounds as declared:
    see the Setting's low_open / high_open."""
    s = SETTING[name]
    low, high = s.low, s.high
    if config is not None and name in ("val_split", "test_split"):
        other = config.test_split if name == "val_split" else config.val_split
        room = 1 - MIN_TRAIN_FRACTION - other
        high = room if high is None else min(high, room)
    return low, high


@dataclass
class TrainConfig:
    """What a run is asked to do. Its fields are SETTINGS (checked at import: a project file stores them
    by these names)."""
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
    start_from: str = "fresh"      # "weights": the weights loaded into the project (fine-tuning)
    device: str = "auto"
    amp: bool = False              # mixed precision (CUDA only)
    memory_budget: float = 0.0     # GiB of data kept as whole tensors; 0: auto; beyond it the data streams
    data_workers: int = -1         # streamed data: reading processes; -1: auto
    bad_images: str = "stop"       # image folders: "stop" at an unreadable image, or "skip" it
    checkpoint_dir: str | None = None

    def validate(self) -> TrainConfig:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)
        for s in SETTINGS:                       # the kind of each
            value = getattr(self, s.name)
            if s.kind in ("int", "float"):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{s.name} must be a number, not {_shown(value)}")
                if s.kind == "int" and not isinstance(value, int):
                    raise ConfigError(f"{s.name} must be a whole number, not {_shown(value)}")
                if isinstance(value, float) and not math.isfinite(value):
                    raise ConfigError(f"{s.name} must be a finite number, not {value}")
            elif s.kind == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{s.name} must be true or false, not {_shown(value)}")
            elif s.kind in ("str", "choice") and not isinstance(value, str):
                raise ConfigError(f"{s.name} must be text, not {_shown(value)}")
            elif s.kind == "path" and value is not None and not isinstance(value, str):
                raise ConfigError(f"{s.name} must be text or null, not {_shown(value)}")
        for s in SETTINGS:                       # its bounds or choices
            need(s.accepts(getattr(self, s.name)), s.out_of_range())
        # the rules between settings
        need(self.val_split + self.test_split < 1 - MIN_TRAIN_FRACTION, SETTING["val_split"].out_of_range())
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

def _check_declared_once() -> None:
    """TrainConfig's fields are SETTINGS': same names, order, types and defaults (saved projects use them)."""
    declared = [(s.name, s.python_type, s.default) for s in SETTINGS]
    actual = [(f.name, f.type, f.default) for f in fields(TrainConfig)]
    if declared != actual:
        raise AssertionError(f"TrainConfig's fields differ from SETTINGS: {declared} != {actual}")


_check_declared_once()


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


__all__ = ["LOSSES", "MAX_SEED", "MIN_TRAIN_FRACTION", "OPTIMIZERS", "SCHEDULES", "SETTING", "SETTINGS", "ConfigError",
           "Setting", "TrainConfig", "TrainingError", "available_devices", "resolve_device", "setting_bounds"]
