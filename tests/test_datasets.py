"""Dataset loaders: the real MNIST/Indian Pines files, and clear errors for broken ones."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from spikeforge.data import datasets
from spikeforge.data.datasets import (
    DatasetError, default_data_dir, mnist_test, read_idx,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
# Published facts from ../shared/datasets/README.md, not from the loader.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    return mnist_test(SHARED)


def test_mnist_test_split_is_the_official_t10k(mnist):
    x, y = mnist
    assert x.shape == (10000, 1, 28, 28)
    assert x.dtype == np.float64 and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 255
    np.testing.assert_array_equal(x, np.round(x))  # raw integer pixel values, not rescaled
    np.testing.assert_array_equal(np.bincount(y, minlength=10), MNIST_TEST_COUNTS)


def test_mnist_matches_a_plain_reading_of_the_idx_file(mnist):
    # Decode the first image by hand: 16-byte header, then 28*28 bytes per image.
    with gzip.open(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz", "rb") as handle:
        data = handle.read(16 + 2 * 784)
    first = np.array(list(data[16:16 + 784]), dtype=np.float64).reshape(28, 28)
    np.testing.assert_array_equal(mnist[0][0, 0], first)
    with gzip.open(SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz", "rb") as handle:
        labels = handle.read(8 + 5)
    np.testing.assert_array_equal(mnist[1][:5], list(labels[8:]))


def _write_gz(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(payload)
    return path


def _idx(dims, body):
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + body


def test_read_idx_round_trip(tmp_path):
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = _write_gz(tmp_path / "a.gz", _idx([2, 3, 4], values.tobytes()))
    np.testing.assert_array_equal(read_idx(path), values)


@pytest.mark.parametrize("payload, words", [
    (_idx([2, 3], bytes(5)), "declares shape"),          # one byte short
    (_idx([2, 3], bytes(7)), "declares shape"),          # one byte too many
    (bytes([0, 0, 0x0D, 1]) + bytes(8), "magic"),        # float idx, not unsigned bytes
    (bytes([0, 0, 0x08, 3, 0, 0]), "header"),            # header cut short
])
def test_read_idx_rejects_malformed_content(tmp_path, payload, words):
    path = _write_gz(tmp_path / "bad.gz", payload)
    with pytest.raises(DatasetError, match=words) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_a_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DatasetError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_a_truncated_gzip_stream(tmp_path):
    good = gzip.compress(_idx([100], bytes(range(100))))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[:len(good) // 2])
    with pytest.raises(DatasetError, match="gzip"):
        read_idx(path)


def test_mnist_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError) as info:
        mnist_test(tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)


def test_mnist_label_count_must_match_the_images(tmp_path):
    _write_gz(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", _idx([2, 28, 28], bytes(1568)))
    _write_gz(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", _idx([3], bytes(3)))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz"):
        mnist_test(tmp_path)


def test_no_data_dir_is_a_clear_error():
    with pytest.raises(DatasetError, match="--data-dir"):
        mnist_test(None)


def test_default_data_dir_prefers_the_current_directory(tmp_path):
    work = tmp_path / "project"
    (tmp_path / "shared" / "datasets").mkdir(parents=True)
    work.mkdir()
    assert default_data_dir(work) == (tmp_path / "shared" / "datasets").resolve()


def test_default_data_dir_falls_back_to_the_repository(tmp_path):
    repository = Path(datasets.__file__).resolve().parents[1]
    expected = (repository / ".." / "shared" / "datasets").resolve()
    found = default_data_dir(tmp_path)  # tmp_path has no ../shared/datasets
    assert found == (expected if expected.is_dir() else None)
    assert expected.is_dir(), "this checkout is expected to sit next to shared/datasets"
