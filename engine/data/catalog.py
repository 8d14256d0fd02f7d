"""Built-in datasets that work offline: scikit-learn's bundled data, two seeded synthetic
generators, and Fashion-MNIST / MNIST from their IDX files (found on disk or downloaded)."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from . import idx
from .core import DataError, Dataset, fresh, frozen

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

SINE_SAMPLES, SINE_STEPS, SINE_CHANNELS = 2000, 50, 8
TOKEN_SAMPLES, TOKEN_LENGTH, TOKEN_VOCAB = 4000, 64, 1000
MARKERS_A = tuple(range(1, 11))    # token ids 1..10
MARKERS_B = tuple(range(11, 21))   # token ids 11..20; 0 is left free for padding


# ----------------------------------------------------------------------------- scikit-learn

def _sklearn(loader_name: str, name: str, task: str, class_names=None, images: bool = False) -> Dataset:
    from sklearn import datasets as skd

    bunch = getattr(skd, loader_name)()
    x = np.asarray(bunch.data, dtype=np.float32)
    if images:
        x = x.reshape(len(x), 1, 8, 8)
    if task == "regression":
        y = np.asarray(bunch.target, dtype=np.float32)
        names = None
    else:
        y = np.asarray(bunch.target, dtype=np.int64)
        names = list(class_names) if class_names is not None else [str(n) for n in bunch.target_names]
    feature_names = None if images else [str(f) for f in getattr(bunch, "feature_names", [])] or None
    return Dataset(name=name, x=x, y=y, task=task, class_names=names, feature_names=feature_names)


DIGIT_NAMES = [str(i) for i in range(10)]
_digits = partial(_sklearn, "load_digits", "digits", "multiclass", DIGIT_NAMES)
_digits_images = partial(_sklearn, "load_digits", "digits_images", "multiclass", DIGIT_NAMES, images=True)
_iris = partial(_sklearn, "load_iris", "iris", "multiclass")
_wine = partial(_sklearn, "load_wine", "wine", "multiclass")
_breast_cancer = partial(_sklearn, "load_breast_cancer", "breast_cancer", "binary")
_diabetes = partial(_sklearn, "load_diabetes", "diabetes", "regression")


# ----------------------------------------------------------------------------- synthetic

def _sine_forecast() -> Dataset:
    """Windows of 8 noisy sine channels; target: channel 0 one step after the window.

    Channel 0 and 1 share a frequency (sine and cosine), channels 2..7 have their own
    frequencies; every window has its own phases and amplitudes, and channel 0's frequency
    varies a little, so a model has to read them off the window. Repeating the last value is
    a sensible baseline (mean squared error ~0.05) that a model can beat (~0.01: the noise).
    """
    rng = np.random.default_rng(20240501)
    n, t, c = SINE_SAMPLES, SINE_STEPS, SINE_CHANNELS
    periods = np.array([16.0, 16.0, 9.0, 23.0, 31.0, 12.5, 40.0, 7.0])
    freq = np.broadcast_to(1.0 / periods, (n, c)).copy()
    freq[:, :2] *= rng.uniform(0.85, 1.15, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, c))
    phase[:, 1] = phase[:, 0] + np.pi / 2           # channel 1: the cosine of channel 0
    amp = rng.uniform(0.5, 1.5, size=(n, c))
    amp[:, 1] = amp[:, 0]
    steps = np.arange(t + 1, dtype=np.float64)
    clean = amp[:, None, :] * np.sin(2 * np.pi * freq[:, None, :] * steps[None, :, None] + phase[:, None, :])
    noisy = clean + rng.normal(0.0, 0.1, size=clean.shape)
    x = noisy[:, :t, :].astype(np.float32)
    y = noisy[:, t, 0].astype(np.float32)
    return Dataset(name="sine_forecast", x=x, y=y, task="regression",
                   feature_names=[f"channel {i}" for i in range(c)])


def _token_classification() -> Dataset:
    """Sequences of 64 token ids; class 1 when a token of set A (ids 1..10) occurs more often
    than a token of set B (ids 11..20). Each sequence holds 1..8 of each set, never equally many;
    the other tokens are random ids 21..999."""
    rng = np.random.default_rng(20240502)
    n, length = TOKEN_SAMPLES, TOKEN_LENGTH
    x = rng.integers(21, TOKEN_VOCAB, size=(n, length), dtype=np.int64)
    count_a = rng.integers(1, 9, size=n)
    count_b = rng.integers(1, 8, size=n)
    count_b = np.where(count_b >= count_a, count_b + 1, count_b)   # 1..8, never equal to count_a
    markers_a = np.asarray(MARKERS_A)
    markers_b = np.asarray(MARKERS_B)
    order = np.argsort(rng.random((n, length)), axis=1)            # random distinct positions per row
    pick_a = rng.integers(0, len(markers_a), size=(n, 8))
    pick_b = rng.integers(0, len(markers_b), size=(n, 8))
    for i in range(n):
        a, b = count_a[i], count_b[i]
        x[i, order[i, :a]] = markers_a[pick_a[i, :a]]
        x[i, order[i, a:a + b]] = markers_b[pick_b[i, :b]]
    y = (count_a > count_b).astype(np.int64)
    return Dataset(name="token_classification", x=x, y=y, task="binary",
                   class_names=["B more often", "A more often"])


# ----------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Builtin:
    """A built-in dataset and the facts describe_builtins() shows without loading it."""

    name: str
    make: Callable[[], Dataset] | None   # None: an IDX dataset, read from disk or downloaded
    description: str
    input_shape: tuple[int, ...]
    task: str
    num_classes: int | None
    samples: int
    test_samples: int = 0
    dtype: str = "float32"
    class_names: tuple[str, ...] | None = None   # IDX datasets only


BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("digits", _digits,
            "Handwritten digits 0-9 as 64 pixel intensities (0..16) of an 8x8 image; 10 classes.",
            (64,), "multiclass", 10, 1797),
    Builtin("digits_images", _digits_images,
            "The digits data as 1x8x8 images (pixel values 0..16); 10 classes.",
            (1, 8, 8), "multiclass", 10, 1797),
    Builtin("iris", _iris, "Iris flowers: 4 measurements (cm), 3 species.",
            (4,), "multiclass", 3, 150),
    Builtin("wine", _wine,
            "Wine: 13 chemical measurements, 3 cultivars. The features have very different scales: "
            "normalise them.",
            (13,), "multiclass", 3, 178),
    Builtin("breast_cancer", _breast_cancer,
            "Breast cancer (Wisconsin): 30 measurements of cell nuclei; malignant or benign.",
            (30,), "binary", 2, 569),
    Builtin("diabetes", _diabetes,
            "Diabetes: 10 standardised patient measurements; target: disease progression after one year "
            "(25..346).",
            (10,), "regression", None, 442),
    Builtin("sine_forecast", _sine_forecast,
            "Forecasting: 50 steps of 8 noisy sine channels; predict channel 0's next value. Repeating the "
            "last value is the baseline to beat.",
            (SINE_STEPS, SINE_CHANNELS), "regression", None, SINE_SAMPLES),
    Builtin("token_classification", _token_classification,
            "Token sequences: 64 ids from a vocabulary of 1000. Class 'A more often' when marker tokens 1..10 "
            "occur more often than markers 11..20.",
            (TOKEN_LENGTH,), "binary", 2, TOKEN_SAMPLES, dtype="int64"),
    Builtin("fashion_mnist", None,
            "Fashion-MNIST: 28x28 grayscale photos of clothing (pixels 0..255), 10 classes; 60,000 training "
            "and 10,000 test images. Downloaded once (30 MB) if not on disk.",
            (28, 28), "multiclass", 10, 60000, 10000, class_names=tuple(FASHION_CLASSES)),
    Builtin("mnist", None,
            "MNIST: 28x28 grayscale handwritten digits (pixels 0..255), 10 classes; 60,000 training and "
            "10,000 test images. Downloaded once (11 MB) if not on disk.",
            (28, 28), "multiclass", 10, 60000, 10000, class_names=tuple(DIGIT_NAMES)),
)}


def builtin_names() -> list[str]:
    return list(BUILTINS)


def normalise_name(spec: str) -> str:
    return spec.strip().lower().replace("-", "_").replace(" ", "_")


def is_builtin(spec: str) -> bool:
    return normalise_name(spec) in BUILTINS


@functools.lru_cache(maxsize=16)
def _made(name: str) -> Dataset:
    entry = BUILTINS[name]
    ds = entry.make()
    ds.description = entry.description
    return frozen(ds)


def load_builtin(spec: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    name = normalise_name(spec)
    entry = BUILTINS.get(name)
    if entry is None:
        raise DataError(f"there is no built-in dataset '{spec}'; choose one of {', '.join(BUILTINS)}")
    if entry.make is not None:
        return fresh(_made(name))
    names = list(entry.class_names) if entry.class_names else None
    return fresh(idx.load_builtin_idx(name, data_dir, names, entry.description))


def describe_builtins() -> list[dict]:
    """One dict per built-in, from static facts (loads and imports nothing): name, input_shape,
    dtype, task, num_classes, samples, test_samples, description, and offline (False for an IDX
    dataset whose files are not on disk yet and would be downloaded)."""
    return [{"name": b.name, "input_shape": b.input_shape, "dtype": b.dtype, "task": b.task,
             "num_classes": b.num_classes, "samples": b.samples, "test_samples": b.test_samples,
             "description": b.description, "offline": b.make is not None or idx.available(b.name)}
            for b in BUILTINS.values()]
