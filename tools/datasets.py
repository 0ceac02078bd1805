"""Dataset loaders shared by the CLI, training and tests (NumPy/SciPy only, no torch).

Every loader returns *raw* values (the dataset's own units, e.g. 0..16 for the 8x8 digits)
with a batch axis first and a channel axis second; a network's ``InputSpec`` then maps them
onto integers with :func:`spikeforge.golden.quantize_input`.
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DatasetError",
    "Split",
    "DIGITS_SPLIT",
    "digits_split",
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
