"""Data files: another dataset's genuine files are recognised, and a command reads only the splits it uses."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request

import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.core.errors import LenetError
from lenet_cli.data import idx as D
from lenet_cli.data import loader as L
from tests.helpers.idx_factory import FILE_NAMES, write_dataset
from tests.helpers.real_data import REAL_DATA, requires_real_data


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def mnist_files_as_canonical(tmp_path, monkeypatch):
    """Synthetic files whose checksums are made MNIST's known ones, placed where Fashion-MNIST's belong."""
    folder = write_dataset(tmp_path / "data" / "fashion", n_train=30, n_test=10)
    monkeypatch.setitem(D.SHA256, "mnist", {name: _sha(folder / name) for name in FILE_NAMES})
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "1")
    return tmp_path / "data"


def test_train_says_these_are_mnist_files_not_fashion(mnist_files_as_canonical):
    result = CliRunner().invoke(
        cli, ["train", "--dataset", "fashion", "--data-dir", str(mnist_files_as_canonical), "--quiet"]
    )
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: these are MNIST files, not Fashion-MNIST: ")
    assert "genuine train-images-idx3-ubyte.gz" in line and "dataset 'mnist'" in line
    assert "delete" not in line and "corrupt" not in line


def test_genuine_file_under_another_name_is_not_called_corrupt(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "mnist", n_train=30, n_test=10)
    monkeypatch.setitem(
        D.SHA256, "mnist", {FILE_NAMES[0]: _sha(folder / FILE_NAMES[2]), FILE_NAMES[2]: _sha(folder / FILE_NAMES[0])}
    )
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "1")
    with pytest.raises(
        LenetError, match="is MNIST's genuine t10k-images-idx3-ubyte.gz, saved under the wrong name"
    ) as info:
        L.load_dataset("mnist", tmp_path, validation_size=5)
    assert "delete" not in str(info.value)


def test_unknown_checksum_still_says_corrupt(tmp_path, monkeypatch):
    write_dataset(tmp_path / "mnist", n_train=30, n_test=10)
    monkeypatch.setitem(D.SHA256, "mnist", {FILE_NAMES[0]: "0" * 64})
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "1")
    with pytest.raises(LenetError, match="wrong checksum .* corrupt or not the original file"):
        L.load_dataset("mnist", tmp_path, validation_size=5)


def test_test_split_reads_only_the_t10k_files(tmp_path):
    folder = write_dataset(tmp_path / "mnist", n_train=30, n_test=10)
    for name in FILE_NAMES[:2]:
        (folder / name).unlink()
    data = L.load_dataset("mnist", tmp_path, splits=("test",))
    assert len(data.test) == 10 and data.train is None and data.validation is None
    with pytest.raises(ValueError, match="the train split was not loaded"):
        data.split("train")
    split, source = L.load_split("mnist", "test", tmp_path)
    assert len(split) == 10 and source == folder
    with pytest.raises(LenetError, match="missing .*train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz"):
        L.load_dataset("mnist", tmp_path, splits=("validation",))


def test_default_loads_every_split_and_validation_alone_skips_test(tmp_path):
    folder = write_dataset(tmp_path / "mnist", n_train=30, n_test=10)
    full = L.load_dataset("mnist", tmp_path, validation_size=5)
    assert (len(full.train), len(full.validation), len(full.test)) == (25, 5, 10)
    for name in FILE_NAMES[2:]:
        (folder / name).unlink()
    only_val = L.load_dataset("mnist", tmp_path, validation_size=5, splits=("validation",))
    assert len(only_val.validation) == 5 and only_val.train is None and only_val.test is None


def test_download_fetches_only_the_needed_files(tmp_path, monkeypatch):
    source = write_dataset(tmp_path / "source", n_train=30, n_test=10)
    fetched = []

    class Response:
        def __init__(self, payload):
            self.payload = payload

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n=-1):
            chunk, self.payload = self.payload, b""
            return chunk

    def fake_urlopen(url, timeout):
        fetched.append(url.rsplit("/", 1)[1])
        return Response((source / fetched[-1]).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setitem(D.SHA256, "mnist", {})
    assert len(L.load_dataset("mnist", splits=("test",)).test) == 10
    assert fetched == list(FILE_NAMES[2:])


@pytest.mark.slow
def test_evaluate_needs_no_training_files(trained_run, synthetic_data_dir, tmp_path):
    only_test = tmp_path / "data" / "mnist"
    only_test.mkdir(parents=True)
    for name in FILE_NAMES[2:]:
        shutil.copy(synthetic_data_dir / "mnist" / name, only_test / name)
    result = CliRunner().invoke(
        cli, ["evaluate", str(trained_run), "--data-dir", str(tmp_path / "data"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert '"split": "test"' in result.stdout


@requires_real_data
@pytest.mark.realdata
def test_real_mnist_files_in_the_fashion_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "1")
    (tmp_path / "fashion").mkdir()
    for name in FILE_NAMES:
        (tmp_path / "fashion" / name).symlink_to(REAL_DATA / "mnist" / name)
    result = CliRunner().invoke(cli, ["train", "--dataset", "fashion", "--data-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 1
    assert (
        result.stderr.startswith("Error: these are MNIST files, not Fashion-MNIST: ") and "delete" not in result.stderr
    )
