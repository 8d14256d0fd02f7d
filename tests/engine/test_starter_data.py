"""The built-ins the starters train on, and finding the built-in that fits a model's Input."""
import numpy as np
import pytest

from engine.runtime.data import clear_cache, describe_builtins, load_dataset
from engine.runtime.data.catalog import builtin_for_shape


@pytest.mark.parametrize("name, shape, task, classes, samples", [
    ("tabular_binary", (20,), "binary", 2, 1000),
    pytest.param("shapes", (3, 128, 128), "multiclass", 10, 600, marks=pytest.mark.slow),   # made twice: ~2 s
])
def test_synthetic_starter_data_is_as_advertised_and_the_same_every_time(name, shape, task, classes, samples):
    ds = load_dataset(name)
    row = {r["name"]: r for r in describe_builtins()}[name]
    assert (row["input_shape"], row["dtype"], row["task"], row["num_classes"], row["samples"], row["offline"]) == \
        (shape, "float32", task, classes, samples, True)
    assert (ds.input_shape, ds.dtype, ds.task, ds.num_classes, len(ds)) == (shape, "float32", task, classes, samples)
    assert np.bincount(ds.y).min() >= samples // classes * 0.8          # every class well represented
    assert np.isfinite(ds.x).all() and ds.description
    first_x, first_y = np.array(ds.x), np.array(ds.y)
    clear_cache()
    again = load_dataset(name)
    np.testing.assert_array_equal(again.x, first_x)
    np.testing.assert_array_equal(again.y, first_y)


def test_shapes_are_pictures_a_model_can_tell_apart():
    ds = load_dataset("shapes")
    assert ds.x.min() >= 0 and ds.x.max() <= 255 and ds.class_names[:3] == ["circle", "square", "triangle"]
    # the shape is brighter than its background: the bright pixels' count differs by class (a ring has
    # fewer than a circle of the same size, a bar fewer than a square)
    bright = (ds.x.mean(axis=1) > 120).mean(axis=(1, 2))
    means = [bright[ds.y == k].mean() for k in range(10)]
    assert means[0] > means[3] and means[1] > means[6] and min(means) > 0.01


@pytest.mark.parametrize("shape, dtype, output, expected", [
    ((1, 8, 8), "float32", (10,), "digits_images"),
    ((64,), "float32", (10,), "digits"),
    ((64,), "int64", (2,), "token_classification"),
    ((20,), "float32", (1,), "tabular_binary"),
    ((30,), "float32", (1,), "breast_cancer"),
    ((3, 128, 128), "float32", (10,), "shapes"),
    ((50, 8), "float32", (1,), "sine_forecast"),
    ((28, 28), "float32", (10,), "fashion_mnist"),
    ((5,), "float32", (1,), None),
    ((1, 8, 8), "int64", None, None),
])
def test_builtin_for_shape_finds_the_data_a_model_takes(shape, dtype, output, expected):
    assert builtin_for_shape(shape, dtype, output) == expected


def test_builtin_for_shape_prefers_data_on_disk_and_targets_that_fit(monkeypatch):
    from engine.runtime.data import catalog

    # fashion_mnist and mnist share their input: the one whose files are on disk wins (no download)
    monkeypatch.setattr(catalog.idx, "available", lambda name, data_dir=None: name == "mnist")
    assert builtin_for_shape((28, 28), "float32", (10,)) == "mnist"
    # with several built-ins of one input, the one whose targets the model's output fits comes first
    listed_first = catalog.Builtin("digits_regression", lambda: None, "digits as values", (64,), "regression", None,
                                   1797)
    monkeypatch.setattr(catalog, "BUILTINS", {"digits_regression": listed_first, **catalog.BUILTINS})
    assert builtin_for_shape((64,), "float32", (1,)) == "digits_regression"
    assert builtin_for_shape((64,), "float32", (10,)) == "digits"
    assert builtin_for_shape([13]) == "wine"
