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


# ----------------------------------------------------------------------------- synthetic
# numpy alone: an exported train.py (which runs this module, copied) makes the very same arrays.

def tabular_arrays():
    """1,000 rows of 20 numeric features for a two-class problem, on the scale of a standardised
    table: 6 informative features (two clusters per class), 4 noisy mixes of them and 10 features
    of noise, in a fixed shuffled column order; 3% of the labels flipped.
    Returns (x float32 (1000, 20), y int64 (1000,))."""
    rng = np.random.default_rng(20240503)
    n, informative, mixed, noise = 1000, 6, 4, 10
    y = rng.integers(0, 2, size=n)
    centres = rng.normal(0.0, 1.5, size=(2, 2, informative))       # class, cluster, feature
    cluster = rng.integers(0, 2, size=n)
    core = centres[y, cluster] + rng.normal(0.0, 1.0, size=(n, informative))
    mixes = core @ rng.normal(0.0, 0.5, size=(informative, mixed)) + rng.normal(0.0, 0.3, size=(n, mixed))
    x = np.concatenate([core, mixes, rng.normal(0.0, 1.0, size=(n, noise))], axis=1)
    x = x[:, rng.permutation(x.shape[1])]
    y = np.where(rng.random(n) < 0.03, 1 - y, y)
    return x.astype(np.float32), y.astype(np.int64)


def shapes_arrays():
    """600 RGB images of 128x128 pixels (values 0..255), 60 of each of 10 shapes (circle, square,
    triangle, ring, plus, diamond, horizontal bar, vertical bar, frame, cross), each of its own
    size, place and colour on a noisy background of its own colour.
    Returns (x float32 (600, 3, 128, 128), y int64 (600,))."""
    rng = np.random.default_rng(20240504)
    per_class, size, classes = 60, 128, 10
    n = per_class * classes
    y = np.repeat(np.arange(classes), per_class)[rng.permutation(n)]
    r = rng.uniform(24.0, 44.0, size=(n, 1, 1)).astype(np.float32)     # half the shape's extent
    cy = rng.uniform(size / 2 - 12.0, size / 2 + 12.0, size=(n, 1, 1)).astype(np.float32)   # near the middle
    cx = rng.uniform(size / 2 - 12.0, size / 2 + 12.0, size=(n, 1, 1)).astype(np.float32)
    background = rng.uniform(0.0, 90.0, size=(n, 3, 1, 1)).astype(np.float32)
    colour = rng.uniform(150.0, 255.0, size=(n, 3, 1, 1)).astype(np.float32)
    x = rng.standard_normal(size=(n, 3, size, size), dtype=np.float32) * np.float32(12.0)
    grid = np.arange(size, dtype=np.float32)
    for k in range(classes):
        i = np.nonzero(y == k)[0]
        rk = r[i]
        dy, dx = grid[None, :, None] - cy[i], grid[None, None, :] - cx[i]
        ay, ax = np.abs(dy), np.abs(dx)
        box, w = np.maximum(ay, ax), rk / 4
        if k in (0, 3):
            dist = np.sqrt(dy * dy + dx * dx)
        if k == 0:
            mask = dist < rk                                            # circle
        elif k == 1:
            mask = box < rk * 0.85                                      # square
        elif k == 2:
            mask = (dy < rk * 0.8) & (dy > -rk) & (ax < (dy + rk) * 0.55)  # triangle, pointing up
        elif k == 3:
            mask = (dist < rk) & (dist > rk * 0.6)                      # ring
        elif k == 4:
            mask = ((ax < w) & (ay < rk)) | ((ay < w) & (ax < rk))      # plus
        elif k == 5:
            mask = ax + ay < rk                                         # diamond
        elif k == 6:
            mask = (ay < w) & (ax < rk)                                 # horizontal bar
        elif k == 7:
            mask = (ax < w) & (ay < rk)                                 # vertical bar
        elif k == 8:
            mask = (box < rk * 0.85) & (box > rk * 0.55)                # frame
        else:
            mask = (np.abs(ax - ay) < w * 0.8) & (box < rk * 0.8)       # cross
        x[i] += np.where(mask[:, None], colour[i], background[i])
    return np.clip(x, 0.0, 255.0, out=x), y.astype(np.int64)


SHAPE_NAMES = ["circle", "square", "triangle", "ring", "plus", "diamond", "horizontal bar", "vertical bar",
               "frame", "cross"]


def _tabular_binary() -> Dataset:
    x, y = tabular_arrays()
    return Dataset(name="tabular_binary", x=x, y=y, task="binary", class_names=["negative", "positive"],
                   feature_names=[f"feature {i}" for i in range(x.shape[1])])


def _shapes() -> Dataset:
    x, y = shapes_arrays()
    return Dataset(name="shapes", x=x, y=y, task="multiclass", class_names=list(SHAPE_NAMES))


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
    Builtin("tabular_binary", _tabular_binary,
            "Tabular (synthetic): 20 numeric features on a standardised scale, 6 of them informative; two "
            "classes. What the Tabular DNN starter trains on.",
            (20,), "binary", 2, 1000),
    Builtin("shapes", _shapes,
            "Shapes (synthetic): 128x128 RGB images (pixels 0..255) of 10 shapes, each of its own size, place "
            "and colour; 60 per class. What the Image CNN starter trains on.",
            (3, 128, 128), "multiclass", 10, 600),
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


def fits_output(entry: Builtin, output_shape) -> bool:
    """Whether a model ending in `output_shape` (no batch) can learn the built-in's targets."""
    shape = tuple(int(d) for d in output_shape)
    if entry.task == "multiclass":
        return shape == (entry.num_classes,)
    if entry.task == "binary":
        return shape in ((1,), (2,))
    return shape == (1,)


def builtin_for_shape(shape, dtype: str = "float32", output_shape=None) -> str | None:
    """The built-in dataset a model with this input (shape without the batch, dtype) trains on:
    the first in the catalogue whose samples have that shape and dtype, preferring one whose
    targets fit `output_shape` (when given), then one that needs no download. None if none has
    that input."""
    shape = tuple(int(d) for d in shape)
    candidates = [b for b in BUILTINS.values() if b.input_shape == shape and b.dtype == dtype]
    if not candidates:
        return None

    def rank(entry: Builtin) -> tuple[int, int]:
        fits = output_shape is None or fits_output(entry, output_shape)
        offline = entry.make is not None or idx.available(entry.name)
        return (0 if fits else 1, 0 if offline else 1)

    return min(candidates, key=rank).name


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
