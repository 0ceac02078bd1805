"""Dataset loaders shared by the CLI, training and tests (NumPy/SciPy only, no torch).

Every loader returns *raw* values (the dataset's own units, e.g. 0..16 for the 8x8 digits)
with a batch axis first and a channel axis second; a network's ``InputSpec`` then maps them
onto integers with :func:`spikeforge.golden.quantize_input`.
"""

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetError",
    "Split",
    "DIGITS_SPLIT",
    "digits_split",
    "MNIST_FILES",
    "default_data_dir",
    "read_idx",
    "mnist_test",
    "mnist_split",
]


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message is one sentence naming the file."""


@dataclass(frozen=True)
class Split:
    """Raw train/test arrays of one dataset: ``x`` is (N, C, ...) float64, ``y`` (N,) int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    raw_min: float
    raw_max: float


#: The digits split every spikeforge model records in its bundle (``dataset.split``).
DIGITS_SPLIT = {"method": "sklearn.model_selection.train_test_split, stratified",
                "test_fraction": 0.25, "seed": 0}


def digits_split(test_fraction=0.25, seed=0):
    """scikit-learn's 8x8 digits (1797 images, raw values 0..16) as a stratified split.

    The split is ``train_test_split(x, y, test_size=test_fraction, random_state=seed,
    stratify=y)``; with the defaults the test split holds 450 images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype(np.float64)[:, None, :, :]  # (1797, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split("digits", x_train, y_train, x_test, y_test, 0.0, 16.0)


# --------------------------------------------------------------------------- file-based datasets

#: Standard MNIST file names (gzip-compressed idx), relative to ``<data_dir>/mnist``.
MNIST_FILES = {"train_images": "train-images-idx3-ubyte.gz",
               "train_labels": "train-labels-idx1-ubyte.gz",
               "test_images": "t10k-images-idx3-ubyte.gz",
               "test_labels": "t10k-labels-idx1-ubyte.gz"}
#: Indian Pines ``.mat`` files relative to ``<data_dir>/hsi``, with the variable each holds.
_SHARED = Path("..") / "shared" / "datasets"


def default_data_dir(cwd=None):
    """The folder holding ``mnist/`` and ``hsi/``, or ``None`` when none is found.

    Looks for ``../shared/datasets`` first relative to ``cwd`` (default: the current
    directory), then relative to the repository root (the folder holding the package's
    ``pyproject.toml``).
    """
    candidates = [Path(cwd if cwd is not None else os.getcwd()) / _SHARED]
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        candidates.append(root / _SHARED)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def _data_file(data_dir, *parts):
    if data_dir is None:
        raise DatasetError("no dataset folder was found (looked for ../shared/datasets next to "
                           "the current directory and the repository); pass --data-dir")
    path = Path(data_dir, *parts)
    if not path.is_file():
        raise DatasetError(f"the dataset file {path} does not exist")
    return path


def read_idx(path):
    """Read a gzip-compressed idx file (MNIST's format) into a ``uint8`` array.

    Raises :class:`DatasetError` naming ``path`` when it is not valid gzip, not an unsigned-byte
    idx file, or shorter or longer than its header says.
    """
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"the dataset file {path} is not a readable gzip file "
                           f"({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"the dataset file {path} is not an unsigned-byte idx file "
                           f"(bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetError(f"the dataset file {path} has a truncated idx header")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(data) - header != int(np.prod(dims)):
        raise DatasetError(f"the dataset file {path} holds {len(data) - header} data bytes but "
                           f"its header declares shape {tuple(dims)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _mnist_pair(data_dir, images_key, labels_key):
    images_path = _data_file(data_dir, "mnist", MNIST_FILES[images_key])
    labels_path = _data_file(data_dir, "mnist", MNIST_FILES[labels_key])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"the dataset file {images_path} holds shape {images.shape}, "
                           f"not (N, 28, 28) images")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.max(initial=0) > 9:
        raise DatasetError(f"the dataset file {labels_path} does not hold one label 0..9 per "
                           f"image of {images_path}")
    return images.astype(np.float64)[:, None], labels.astype(np.int64)


def mnist_test(data_dir):
    """The official MNIST test set (t10k): ``x`` (10000, 1, 28, 28) float64 raw 0..255, ``y``."""
    return _mnist_pair(data_dir, "test_images", "test_labels")


def mnist_split(data_dir):
    """MNIST's official 60000/10000 train/test split as a :class:`Split` (raw 0..255)."""
    x_train, y_train = _mnist_pair(data_dir, "train_images", "train_labels")
    x_test, y_test = mnist_test(data_dir)
    return Split("mnist", x_train, y_train, x_test, y_test, 0.0, 255.0)
