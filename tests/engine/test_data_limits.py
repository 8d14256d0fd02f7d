"""Imported data at its edges: images far larger than the image size asked for (refused from their
header, or decoded reduced), and CSV files written with decimal commas."""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.runtime.data import DataError, load_dataset


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels but whose data is a few bytes: decoding it
    would allocate the whole image before finding out."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))


def image_folder(root: Path, big: dict[str, bytes] | None = None, small: int = 3) -> Path:
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(small):
            Image.new("RGB", (32, 24), (40 * i, 80, 120)).save(root / name / f"{i}.png")
    for rel, data in (big or {}).items():
        (root / rel).write_bytes(data)
    return root


def test_an_image_far_larger_than_the_image_size_is_refused_from_its_header_naming_it(tmp_path):
    folder = image_folder(tmp_path / "pics", {"dogs/huge.png": png_claiming(9000, 9000)})
    started = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_dataset(str(folder), image_size=(64, 64))
    assert time.perf_counter() - started < 2
    message = str(info.value)
    assert "dogs/huge.png is 9000x9000 pixels (81 megapixels)" in message and "64x64" in message, message
    assert "\n" not in message


def test_without_an_image_size_a_first_image_over_4096_on_a_side_asks_for_one(tmp_path):
    folder = image_folder(tmp_path / "pics", {"cats/0.png": png_claiming(9000, 9000)})
    with pytest.raises(DataError, match=r"image cats/0\.png is 9000x9000 pixels, larger than 4096 on a side; "
                                        r"choose an image size"):
        load_dataset(str(folder))


def test_a_large_photo_is_decoded_at_a_reduced_scale_and_loads(tmp_path):
    """A 6000x6000 JPEG (36 megapixels, over the limit decoded whole) loads at 64x64: JPEG decodes at 1/8."""
    folder = image_folder(tmp_path / "pics")
    photo = Image.new("L", (6000, 6000), 200)
    photo.paste(50, (0, 0, 3000, 6000))                   # left half dark
    photo.save(folder / "cats" / "photo.jpg", quality=90)
    ds = load_dataset(str(folder), image_size=(64, 64), grayscale=True)
    assert ds.x.shape == (7, 1, 64, 64)
    index = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*")).index("cats/photo.jpg")
    picture = ds.x[index, 0]
    assert abs(picture[:, :28].mean() - 50) < 3 and abs(picture[:, 36:].mean() - 200) < 3


def test_images_within_the_margin_still_load_and_are_resized(tmp_path):
    folder = image_folder(tmp_path / "pics")
    Image.new("RGB", (2000, 1500), (255, 0, 0)).save(folder / "dogs" / "big.png")    # 3 MP: under the floor
    ds = load_dataset(str(folder), image_size=(16, 16))
    assert ds.x.shape == (7, 3, 16, 16)
    assert np.allclose(ds.x[-1, :, 8, 8], [255, 0, 0])


# ----------------------------------------------------------------------------- decimal commas

def test_semicolon_csv_with_decimal_commas_reads_numbers_not_categories(tmp_path):
    path = tmp_path / "european.csv"
    path.write_text("length;width;colour;price\n1,5;2;red;10,25\n2,5;3,75;blue;-3,5\n-0,5;1e-2;red;7\n"
                    "4;1,0E1;blue;0,5\n")
    ds = load_dataset(str(path))
    assert ds.feature_names == ["length", "width", "colour=blue", "colour=red"]
    assert np.allclose(ds.x[:, :2], [[1.5, 2], [2.5, 3.75], [-0.5, 0.01], [4, 10]])
    assert ds.task == "regression" and np.allclose(ds.y, [10.25, -3.5, 7, 0.5])


def test_decimal_commas_need_every_value_of_the_column_to_read_so(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("a;b;label\n1,5;1.5;x\n2,5;2,5;y\n3;1,2,3;x\n4,0;4;y\n")
    ds = load_dataset(str(path))
    assert ds.feature_names[0] == "a" and np.allclose(ds.x[:, 0], [1.5, 2.5, 3, 4])
    assert ds.feature_names[1:] == ["b=1,2,3", "b=1.5", "b=2,5", "b=4"]      # mixed notations: left as text
    assert ds.class_names == ["x", "y"]


def test_commas_inside_a_comma_separated_file_are_not_decimal_commas(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('a,b,label\n"1,5",1,x\n"2,5",2,y\n"1,5",3,x\n')
    ds = load_dataset(str(path))
    assert ds.feature_names == ["a=1,5", "a=2,5", "b"]
