"""The IDX loader: correct arrays, a validation split, and a one-line error for every bad file."""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from lenet_cli.core.errors import LenetError
from lenet_cli.data import dataset as DS
from lenet_cli.data import idx as D
from lenet_cli.data import loader as L
from tests.helpers.idx_factory import (
    FILE_NAMES,
    idx_images_bytes,
    idx_labels_bytes,
    write_dataset,
    write_gz,
)


def test_loads_splits_and_holds_out_first_validation_images(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=300, n_test=50)
    ds = L.load_dataset("mnist", tmp_path, validation_size=100)
    assert ds.train.images.shape == (200, 28, 28) and ds.train.images.dtype == np.uint8
    assert ds.validation.images.shape == (100, 28, 28)
    assert ds.test.images.shape == (50, 28, 28)
    full = D.load_idx_images(tmp_path / "mnist" / FILE_NAMES[0])
    np.testing.assert_array_equal(ds.validation.images, full[:100])
    np.testing.assert_array_equal(ds.train.images, full[100:])


def test_train_limit_keeps_validation_unchanged(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=300, n_test=50)
    a = L.load_dataset("mnist", tmp_path, validation_size=100)
    b = L.load_dataset("mnist", tmp_path, validation_size=100, train_limit=20)
    assert len(b.train) == 20
    np.testing.assert_array_equal(a.validation.images, b.validation.images)


def test_folder_holding_files_directly_is_accepted(tmp_path):
    write_dataset(tmp_path, n_train=50, n_test=10)
    assert D.locate_dataset("fashion", tmp_path) == tmp_path


def test_env_var_is_used_when_no_data_dir(tmp_path, monkeypatch):
    write_dataset(tmp_path / "fashion", n_train=50, n_test=10)
    monkeypatch.setenv("LENET_DATA_DIR", str(tmp_path))
    assert D.locate_dataset("fashion") == tmp_path / "fashion"


def test_class_names():
    assert DS.CLASS_NAMES["fashion"][0] == "T-shirt/top" and DS.CLASS_NAMES["fashion"][9] == "Ankle boot"
    assert DS.CLASS_NAMES["mnist"] == tuple("0123456789")


def test_as_model_input_scales_to_unit_range():
    from lenet_cli.core.inputs import as_model_input

    x = as_model_input(np.array([[[0] * 28] * 28, [[255] * 28] * 28], dtype=np.uint8))
    assert x.shape == (2, 28, 28, 1) and x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0


def _one_line(exc: LenetError) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_missing_file_names_it_and_says_how_to_fix(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    (tmp_path / "mnist" / FILE_NAMES[3]).unlink()
    with pytest.raises(LenetError) as info:
        L.load_dataset("mnist", tmp_path)
    msg = _one_line(info.value)
    assert FILE_NAMES[3] in msg and "copy" in msg


def test_missing_data_dir(tmp_path):
    with pytest.raises(LenetError, match="does not exist"):
        D.locate_dataset("mnist", tmp_path / "nope")


@pytest.mark.parametrize(
    "index, payload, fragment",
    [
        (0, idx_images_bytes(np.zeros((10, 28, 28)), magic=2049), "magic number 2049, expected 2051"),
        (1, idx_labels_bytes(np.zeros(50), magic=2051), "magic number 2051, expected 2049"),
        (0, idx_images_bytes(np.zeros((10, 28, 28)), count=11), "truncated or padded"),
        (1, idx_labels_bytes(np.zeros(10), count=9), "truncated or padded"),
        (0, b"\x00\x00", "shorter than the 16-byte IDX header"),
        (1, idx_labels_bytes(np.full(50, 12)), "label 12"),
    ],
)
def test_corrupt_idx_contents(tmp_path, index, payload, fragment):
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    write_gz(tmp_path / "mnist" / FILE_NAMES[index], payload)
    with pytest.raises(LenetError) as info:
        L.load_dataset("mnist", tmp_path, validation_size=5)
    msg = _one_line(info.value)
    assert fragment in msg and FILE_NAMES[index] in msg


def test_image_label_count_mismatch(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    write_gz(tmp_path / "mnist" / FILE_NAMES[3], idx_labels_bytes(np.zeros(9)))
    with pytest.raises(LenetError, match="10 images but .* 9 labels"):
        L.load_dataset("mnist", tmp_path, validation_size=5)


def test_truncated_gzip(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    path = tmp_path / "mnist" / FILE_NAMES[0]
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(LenetError, match="not a valid gzip file"):
        L.load_dataset("mnist", tmp_path, validation_size=5)


def test_not_gzip_at_all(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    (tmp_path / "mnist" / FILE_NAMES[2]).write_bytes(b"<html>404</html>")
    with pytest.raises(LenetError, match="not a valid gzip file"):
        L.load_dataset("mnist", tmp_path, validation_size=5)


def test_checksum_mismatch_is_refused_when_verifying(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "1")
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    with pytest.raises(LenetError, match="wrong checksum") as info:
        L.load_dataset("mnist", tmp_path, validation_size=5)
    assert "LENET_VERIFY_CHECKSUMS=0" in str(info.value)


def test_validation_size_too_large(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    with pytest.raises(LenetError, match="between 0 and"):
        L.load_dataset("mnist", tmp_path, validation_size=50)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path):
    write_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    (tmp_path / "mnist" / FILE_NAMES[0]).chmod(0)
    with pytest.raises(LenetError, match="permission denied"):
        L.load_dataset("mnist", tmp_path, validation_size=5)


class _FakeResponse:
    def __init__(self, payload: bytes):
        self.payload = payload

    def read(self, n):
        chunk, self.payload = self.payload[:n], self.payload[n:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_checksum_and_moves_into_place(tmp_path, monkeypatch):
    payload = gzip.compress(idx_labels_bytes(np.arange(10) % 10))
    monkeypatch.setitem(D.SHA256, "mnist", {**D.SHA256["mnist"], FILE_NAMES[3]: hashlib.sha256(payload).hexdigest()})
    seen = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: seen.append(url) or _FakeResponse(payload))
    path = D.download_file("mnist", FILE_NAMES[3], tmp_path, mirrors=("https://mirror.example/",))
    assert path.read_bytes() == payload and seen == ["https://mirror.example/" + FILE_NAMES[3]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAMES[3]]


def test_failed_download_leaves_no_file(tmp_path, monkeypatch):
    def broken(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", broken)
    with pytest.raises(LenetError) as info:
        D.download_file("mnist", FILE_NAMES[0], tmp_path, mirrors=("https://a.example/", "https://b.example/"))
    msg = _one_line(info.value)
    assert "no route to host" in msg and "offline machine" in msg and str(tmp_path) in msg
    assert list(tmp_path.iterdir()) == []


def test_corrupt_download_is_discarded(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _FakeResponse(b"truncated"))
    with pytest.raises(LenetError, match="checksum mismatch"):
        D.download_file("mnist", FILE_NAMES[0], tmp_path, mirrors=("https://a.example/",))
    assert list(tmp_path.iterdir()) == []


def test_cache_is_used_and_filled_by_download(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = write_dataset(tmp_path / "source", n_train=30, n_test=10)
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout: _FakeResponse((source / url.rsplit("/", 1)[1]).read_bytes())
    )
    monkeypatch.setitem(D.SHA256, "fashion", {})
    ds = L.load_dataset("fashion", validation_size=5)
    assert len(ds.train) == 25
    assert (tmp_path / "cache" / "lenet" / "fashion" / FILE_NAMES[0]).is_file()
