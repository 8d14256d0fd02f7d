"""The dataset layer: built-ins, splits, IDX files (on disk and downloaded), CSV, NPZ, image folders."""
import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
from functools import partial

import numpy as np
import pytest

from engine.runtime.data import (
    DataError,
    Dataset,
    builtin_names,
    clear_cache,
    describe_builtins,
    load_dataset,
    split_dataset,
)
from engine.runtime.data import idx as idx_mod

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own empty cache and no data folder, proxy or download override."""
    monkeypatch.setenv("DEEPWIRE_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("DEEPWIRE_DATA_DIR", "DEEPWIRE_DATASET_URL", "http_proxy", "HTTP_PROXY", "https_proxy",
                "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(idx_mod, "TIMEOUT_S", 5)
    yield
    idx_mod._read_cached.cache_clear()


# ----------------------------------------------------------------------------- built-ins

BUILTIN_FACTS = {
    # name: (input_shape, dtype, task, num_classes, samples)
    "digits": ((64,), "float32", "multiclass", 10, 1797),
    "digits_images": ((1, 8, 8), "float32", "multiclass", 10, 1797),
    "iris": ((4,), "float32", "multiclass", 3, 150),
    "wine": ((13,), "float32", "multiclass", 3, 178),
    "breast_cancer": ((30,), "float32", "binary", 2, 569),
    "diabetes": ((10,), "float32", "regression", None, 442),
    "sine_forecast": ((50, 8), "float32", "regression", None, 2000),
    "token_classification": ((64,), "int64", "binary", 2, 4000),
}


@pytest.mark.parametrize("name", sorted(BUILTIN_FACTS))
def test_offline_builtin_has_the_advertised_shape_task_and_classes(name):
    shape, dtype, task, k, n = BUILTIN_FACTS[name]
    ds = load_dataset(name)
    assert (ds.input_shape, ds.dtype, ds.task, ds.num_classes, len(ds)) == (shape, dtype, task, k, n)
    assert ds.x.shape == (n, *shape) and ds.x.dtype == np.dtype(dtype)
    assert ds.y.shape == (n,) and ds.target_shape == ()
    if task == "regression":
        assert ds.y.dtype == np.float32 and ds.class_names is None
    else:
        assert ds.y.dtype == np.int64 and len(ds.class_names) == k
        assert set(np.unique(ds.y)) == set(range(k))
    assert ds.x_test is None and ds.description


def test_builtin_details_users_see():
    digits = load_dataset("digits")
    assert digits.class_names == [str(i) for i in range(10)]
    assert digits.x.min() == 0 and digits.x.max() == 16
    np.testing.assert_array_equal(load_dataset("digits_images").x.reshape(-1, 64), digits.x)
    assert load_dataset("breast_cancer").class_names == ["malignant", "benign"]
    assert len(load_dataset("breast_cancer").feature_names) == 30
    assert load_dataset(" IRIS ").name == "iris"                  # names are forgiving


def test_describe_lists_every_builtin_without_downloading():
    rows = {r["name"]: r for r in describe_builtins()}
    assert list(rows) == builtin_names()
    for name in BUILTIN_FACTS:
        r, ds = rows[name], load_dataset(name)
        assert (r["input_shape"], r["dtype"], r["task"], r["num_classes"], r["samples"]) == \
            (ds.input_shape, ds.dtype, ds.task, ds.num_classes, len(ds))
        assert r["offline"] and r["description"] == ds.description
    for name in ("fashion_mnist", "mnist"):
        assert rows[name]["input_shape"] == (28, 28) and rows[name]["num_classes"] == 10
        assert rows[name]["samples"] == 60000 and rows[name]["test_samples"] == 10000
        assert rows[name]["offline"] is False          # the empty test cache has no files


def test_cached_builtins_cannot_be_corrupted_by_callers():
    ds = load_dataset("iris")
    with pytest.raises(ValueError):
        ds.x[0, 0] = 1e6
    ds.class_names.append("bogus")
    ds.x = ds.x * 0
    again = load_dataset("iris")
    assert again.class_names == ["setosa", "versicolor", "virginica"] and again.x.max() > 0


def test_synthetic_datasets_are_deterministic():
    first = {n: load_dataset(n) for n in ("sine_forecast", "token_classification")}
    clear_cache()
    for name, ds in first.items():
        again = load_dataset(name)
        np.testing.assert_array_equal(ds.x, again.x)
        np.testing.assert_array_equal(ds.y, again.y)


def test_sine_forecast_last_value_is_a_baseline_a_model_can_beat():
    ds = load_dataset("sine_forecast")
    baseline = float(np.mean((ds.x[:, -1, 0] - ds.y) ** 2))
    # a plain least-squares fit on the last few steps of every channel already beats it clearly
    feats = np.concatenate([ds.x[:, -6:, :].reshape(len(ds), -1), np.ones((len(ds), 1), np.float32)], axis=1)
    train, test = slice(0, 1500), slice(1500, None)
    w, *_ = np.linalg.lstsq(feats[train], ds.y[train], rcond=None)
    model = float(np.mean((feats[test] @ w - ds.y[test]) ** 2))
    assert 0.02 < baseline < 0.5 * float(ds.y.var())
    assert model < baseline / 2


def test_token_classification_follows_its_marker_rule():
    ds = load_dataset("token_classification")
    assert ds.x.min() >= 1 and ds.x.max() < 1000
    count_a = ((ds.x >= 1) & (ds.x <= 10)).sum(axis=1)
    count_b = ((ds.x >= 11) & (ds.x <= 20)).sum(axis=1)
    np.testing.assert_array_equal(ds.y, (count_a > count_b).astype(np.int64))
    assert 0.45 < ds.y.mean() < 0.55


def test_unknown_names_and_paths_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="neither a built-in dataset"):
        load_dataset("imagenet")
    other = tmp_path / "data.txt"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_dataset(str(other))


# ----------------------------------------------------------------------------- splits

def test_stratified_split_keeps_class_proportions_and_is_seeded():
    ds = load_dataset("breast_cancer")
    s = split_dataset(ds, val_split=0.1, test_split=0.2, seed=3)
    n = len(ds)
    assert len(s.x_test) == round(0.2 * n) and len(s.x_val) == round(0.1 * n)
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == n
    share = ds.y.mean()
    for y in (s.y_train, s.y_val, s.y_test):
        assert abs(y.mean() - share) < 0.03
    rows = np.concatenate([s.x_train, s.x_val, s.x_test])
    assert len(np.unique(rows, axis=0)) == len(np.unique(ds.x, axis=0))   # disjoint and complete
    again = split_dataset(ds, 0.1, 0.2, seed=3)
    np.testing.assert_array_equal(again.x_test, s.x_test)
    np.testing.assert_array_equal(again.y_train, s.y_train)
    other = split_dataset(ds, 0.1, 0.2, seed=4)
    assert not np.array_equal(other.x_test, s.x_test)
    s.x_train[0, 0] = -1.0            # the splits are the caller's own, writable copies


def test_split_with_a_tiny_class_falls_back_without_crashing():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.array([0] * 19 + [1], dtype=np.int64)
    s = split_dataset(Dataset("tiny", x, y, "binary"), 0.2, 0.2, seed=0)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (12, 4, 4)


def test_predefined_test_split_is_used_and_only_validation_is_carved():
    x, y = np.zeros((100, 3), np.float32), np.arange(100) % 4
    xt, yt = np.ones((7, 3), np.float32), np.arange(7) % 4
    ds = Dataset("d", x, y.astype(np.int64), "multiclass", x_test=xt, y_test=yt.astype(np.int64))
    s = split_dataset(ds, val_split=0.25, test_split=0.2)
    assert (len(s.x_train), len(s.x_val)) == (75, 25)
    np.testing.assert_array_equal(s.x_test, xt)
    assert abs(np.bincount(s.y_val, minlength=4) - 25 / 4).max() <= 1   # stratified


def test_regression_split_and_zero_fractions():
    ds = load_dataset("diabetes")
    s = split_dataset(ds, val_split=0.0, test_split=0.0)
    assert len(s.x_train) == len(ds) and s.x_val.shape == (0, 10) and s.y_test.shape == (0,)
    with pytest.raises(DataError, match="leave nothing to train on"):
        split_dataset(ds, 0.5, 0.5)
    with pytest.raises(DataError, match="fraction"):
        split_dataset(ds, -0.1, 0.2)


# ----------------------------------------------------------------------------- IDX

def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.astype(np.uint8).tobytes()


def tiny_idx(n_train=12, n_test=5, size=28, seed=0):
    rng = np.random.default_rng(seed)
    return {
        IDX_FILES[0]: rng.integers(0, 256, (n_train, size, size)),
        IDX_FILES[1]: np.arange(n_train) % 10,
        IDX_FILES[2]: rng.integers(0, 256, (n_test, size, size)),
        IDX_FILES[3]: np.arange(n_test) % 10,
    }


def write_idx(folder, arrays, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for base, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (folder / (base + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / base).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_fashion_mnist_from_a_chosen_folder(tmp_path, gz):
    arrays = tiny_idx()
    write_idx(tmp_path / "fm", arrays, gz=gz)
    ds = load_dataset("Fashion-MNIST", data_dir=str(tmp_path / "fm"))
    assert ds.x.shape == (12, 28, 28) and ds.x.dtype == np.float32 and ds.input_shape == (28, 28)
    np.testing.assert_array_equal(ds.x, arrays[IDX_FILES[0]].astype(np.float32))   # raw 0..255
    np.testing.assert_array_equal(ds.y, arrays[IDX_FILES[1]])
    assert ds.x_test.shape == (5, 28, 28) and ds.y_test.tolist() == [0, 1, 2, 3, 4]
    assert ds.task == "multiclass" and ds.num_classes == 10
    assert ds.class_names[:2] == ["T-shirt/top", "Trouser"] and ds.class_names[-1] == "Ankle boot"
    s = split_dataset(ds, val_split=0.25)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (9, 3, 5)


def test_mnist_from_the_data_dir_environment_variable(tmp_path, monkeypatch):
    write_idx(tmp_path / "all" / "mnist", tiny_idx(seed=1))
    monkeypatch.setenv("DEEPWIRE_DATA_DIR", str(tmp_path / "all"))
    ds = load_dataset("mnist")
    assert ds.class_names == [str(i) for i in range(10)] and len(ds) == 12
    assert {r["name"]: r["offline"] for r in describe_builtins()}["mnist"] is True


def test_a_folder_of_idx_files_loads_as_a_dataset(tmp_path):
    write_idx(tmp_path / "letters", tiny_idx(size=6), gz=False)
    ds = load_dataset(str(tmp_path / "letters"))
    assert ds.name == "letters" and ds.input_shape == (6, 6) and ds.num_classes == 10
    assert ds.x_test is not None


@pytest.mark.parametrize("damage, message", [
    ("magic", "bad magic number"),
    ("truncate", "truncated"),
    ("truncate_gzip", "cannot be read|truncated"),
    ("huge_header", "corrupt"),
    ("count_mismatch", "do not belong together"),
    ("label_range", "label"),
])
def test_corrupt_idx_files_are_reported_not_crashed_on(tmp_path, damage, message):
    arrays = tiny_idx()
    folder = tmp_path / "bad"
    write_idx(folder, arrays, gz=False)
    images = folder / IDX_FILES[0]
    data = images.read_bytes()
    if damage == "magic":
        images.write_bytes(b"\x00\x00\x99\x03" + data[4:])
    elif damage == "truncate":
        images.write_bytes(data[:-100])
    elif damage == "truncate_gzip":
        images.unlink()
        (folder / (IDX_FILES[0] + ".gz")).write_bytes(gzip.compress(data)[:200])
    elif damage == "huge_header":
        images.write_bytes(data[:4] + struct.pack(">3I", 2**31, 2**16, 2**16) + data[16:])
    elif damage == "count_mismatch":
        (folder / IDX_FILES[1]).write_bytes(idx_bytes(np.arange(11) % 10))
    elif damage == "label_range":
        (folder / IDX_FILES[1]).write_bytes(idx_bytes(np.full(12, 42)))
    with pytest.raises(DataError, match=message):
        load_dataset("fashion_mnist", data_dir=str(folder))


# ----------------------------------------------------------------------------- downloading

class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """Tiny gzipped IDX files on a local web server; yields (base_url, folder, request log)."""
    folder = tmp_path / "www"
    write_idx(folder, tiny_idx(seed=2))
    log: list = []
    handler = type("Handler", (CountingHandler,), {"requests": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder, log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def sums(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def cache_files(tmp_path, name="fashion_mnist"):
    folder = tmp_path / "cache" / "datasets" / name
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_lands_checked_files_in_the_cache_once(tmp_path, monkeypatch, served):
    url, folder, log = served
    monkeypatch.setenv("DEEPWIRE_DATASET_URL", url)
    monkeypatch.setitem(idx_mod.SHA256, "fashion_mnist", sums(folder))
    ds = load_dataset("fashion_mnist")
    assert len(ds) == 12 and ds.x_test.shape == (5, 28, 28)
    assert cache_files(tmp_path) == sorted(b + ".gz" for b in IDX_FILES)
    assert len(log) == 4
    clear_cache()                       # not even the in-memory copy: read from the cache folder
    again = load_dataset("fashion_mnist")
    np.testing.assert_array_equal(again.x, ds.x)
    assert len(log) == 4                # nothing downloaded the second time


def test_download_url_may_name_the_dataset(tmp_path, monkeypatch, served):
    url, folder, log = served
    (folder / "mnist").mkdir()
    for p in list(folder.glob("*.gz")):
        p.rename(folder / "mnist" / p.name)
    monkeypatch.setenv("DEEPWIRE_DATASET_URL", url + "{name}")
    monkeypatch.setitem(idx_mod.SHA256, "mnist", sums(folder / "mnist"))
    assert len(load_dataset("mnist")) == 12
    assert all(p.startswith("/mnist/") for p in log)


def test_a_wrong_checksum_is_refused_and_leaves_nothing_in_the_cache(tmp_path, monkeypatch, served):
    url, folder, log = served
    monkeypatch.setenv("DEEPWIRE_DATASET_URL", url)
    hashes = sums(folder)
    hashes["t10k-labels-idx1-ubyte.gz"] = "0" * 64       # the last file is "tampered with"
    monkeypatch.setitem(idx_mod.SHA256, "fashion_mnist", hashes)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("fashion_mnist")
    assert cache_files(tmp_path) == []   # all or nothing, no temporary leftovers


def test_offline_names_the_missing_files_and_the_folder_to_put_them_in(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]           # closed again: nothing listens there
    monkeypatch.setenv("DEEPWIRE_DATASET_URL", f"http://127.0.0.1:{port}/")
    with pytest.raises(DataError) as err:
        load_dataset("mnist")
    message = str(err.value)
    assert str(tmp_path / "cache" / "datasets" / "mnist") in message
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert "\n" not in message
    assert cache_files(tmp_path, "mnist") == []


# ----------------------------------------------------------------------------- CSV

def test_csv_with_text_columns_one_hot_encodes_them_and_names_the_classes(tmp_path):
    path = tmp_path / "pets.csv"
    path.write_text("weight,colour,age,species\n"
                    "4.5,black,3,cat\n30,brown,5,dog\n5.1,white,1,cat\n25,black,7,dog\n0.1,white,1,fish\n")
    ds = load_dataset(str(path), target="species")
    assert ds.name == "pets" and ds.task == "multiclass" and ds.class_names == ["cat", "dog", "fish"]
    assert ds.y.tolist() == [0, 1, 0, 1, 2]
    assert ds.feature_names == ["weight", "colour=black", "colour=brown", "colour=white", "age"]
    assert ds.input_shape == (5,) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x[1], [30, 0, 1, 0, 5])


def test_csv_numeric_targets_choose_classification_or_regression(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5},{i % 2}" for i in range(30))
    (tmp_path / "a.csv").write_text("f1,f2,label\n" + rows + "\n")
    ds = load_dataset(str(tmp_path / "a.csv"))            # default target: the last column
    assert ds.task == "binary" and ds.num_classes == 2 and ds.feature_names == ["f1", "f2"]
    reg = load_dataset(str(tmp_path / "a.csv"), target="f2")   # 30 distinct values
    assert reg.task == "regression" and reg.y.dtype == np.float32 and reg.feature_names == ["f1", "label"]
    assert reg.target_shape == () and reg.num_classes is None


def test_csv_missing_values_are_reported_by_column_and_count(tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("a,b,c,y\n1,,x,0\n2,NA,y,1\n3,4,NaN,0\n4,5,z,1\n")
    with pytest.raises(DataError, match=r"'b' \(2 rows\), 'c' \(1 row\)"):
        load_dataset(str(path))


def test_csv_without_header_or_target_is_refused_clearly(tmp_path):
    (tmp_path / "nohead.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="no header row"):
        load_dataset(str(tmp_path / "nohead.csv"))
    (tmp_path / "ok.csv").write_text("a,b\n1,0\n2,1\n")
    with pytest.raises(DataError, match="no column 'label'.*a, b"):
        load_dataset(str(tmp_path / "ok.csv"), target="label")
    (tmp_path / "ragged.csv").write_text("a,b\n1,0\n2\n")
    with pytest.raises(DataError, match="line 3"):
        load_dataset(str(tmp_path / "ragged.csv"))


# ----------------------------------------------------------------------------- NPZ

def test_npz_channels_last_images_become_channels_first(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 5, 6, 3)).astype(np.uint8)
    path = tmp_path / "pics.npz"
    np.savez(path, x_train=x, y_train=np.arange(10) % 3, x_test=x[:4], y_test=np.arange(4) % 3)
    ds = load_dataset(str(path))
    assert ds.input_shape == (3, 5, 6) and ds.dtype == "float32" and ds.task == "multiclass"
    np.testing.assert_array_equal(ds.x[2, 1], x[2, :, :, 1])
    assert ds.x_test.shape == (4, 3, 5, 6) and ds.num_classes == 3
    s = split_dataset(ds, val_split=0.2)
    assert len(s.x_test) == 4 and len(s.x_train) == 8


def test_npz_grayscale_tokens_and_regression(tmp_path):
    np.savez(tmp_path / "g.npz", x_train=np.zeros((6, 28, 28), np.uint8), y_train=np.array([0, 1] * 3))
    g = load_dataset(str(tmp_path / "g.npz"))
    assert g.input_shape == (28, 28) and g.task == "binary"
    np.savez(tmp_path / "t.npz", x_train=np.arange(20, dtype=np.int32).reshape(4, 5),
             y_train=np.eye(3, dtype=np.float32)[[0, 1, 2, 1]])        # one-hot labels
    t = load_dataset(str(tmp_path / "t.npz"))
    assert t.dtype == "int64" and t.y.tolist() == [0, 1, 2, 1] and t.task == "multiclass"
    np.savez(tmp_path / "r.npz", x_train=np.ones((5, 2)), y_train=np.ones((5, 3)) * 0.5)
    r = load_dataset(str(tmp_path / "r.npz"))
    assert r.task == "regression" and r.target_shape == (3,) and r.y.dtype == np.float32


class Trap:
    """Unpickling this would create a folder: proof that a loader ran pickled code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_npz_with_python_objects_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    y = np.empty(2, dtype=object)
    y[:] = [Trap(str(marker)), 1]
    np.savez(tmp_path / "evil.npz", x_train=np.zeros((2, 3)), y_train=y)
    with pytest.raises(DataError, match="Python objects"):
        load_dataset(str(tmp_path / "evil.npz"))
    assert not marker.exists()


def test_npz_without_the_keras_names_says_which_it_needs(tmp_path):
    np.savez(tmp_path / "odd.npz", data=np.zeros(3))
    with pytest.raises(DataError, match="x_train and y_train.*data"):
        load_dataset(str(tmp_path / "odd.npz"))
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError):
        load_dataset(str(tmp_path / "fake.npz"))


# ----------------------------------------------------------------------------- image folders

def test_image_folder_with_one_subfolder_per_class(tmp_path):
    image = pytest.importorskip("PIL.Image")
    root = tmp_path / "shapes"
    for k, cls in enumerate(("circle", "square", "triangle")):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            image.new("RGB", (6 + i, 4), (k * 100, 10, 20)).save(root / cls / f"{i}.png")
    (root / "circle" / "notes.txt").write_text("not an image")
    ds = load_dataset(str(root))
    assert ds.class_names == ["circle", "square", "triangle"] and ds.task == "multiclass"
    assert ds.x.shape == (6, 3, 4, 6) and ds.x.dtype == np.uint8     # first image: 6 wide, 4 high
    assert ds.dtype == "float32"                                     # pixels, not token ids
    assert ds.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.x[2, 0].max() == 100 and ds.x[2, 1].max() == 10         # RGB channels, raw 0..255
    gray = load_dataset(str(root), image_size=(8, 5), grayscale=True)
    assert gray.x.shape == (6, 1, 8, 5) and gray.input_shape == (1, 8, 5)


def test_image_folder_reports_unreadable_images(tmp_path):
    pytest.importorskip("PIL.Image")
    root = tmp_path / "broken"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "x.png").write_bytes(b"\x89PNG not really")
    (root / "b" / "y.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="cannot read image"):
        load_dataset(str(root))
