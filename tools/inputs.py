"""``--inputs FILE``: the user's own samples instead of a dataset's test split.

One loader for every command that takes them (``golden``, ``simulate``, ``energy``, ``sweep
membrane``, ``report``): a ``.npy`` array of raw samples, or a ``.npz`` archive with the
samples ``x`` and, optionally, integer labels ``y``. The samples are *raw* values, like a
dataset's (the bundle's ``input.raw_min .. raw_max``; each command quantizes them with
``golden.quantize_input``), of shape ``(N, *input shape)``. Every check (file, entries, dtype,
shape, range, labels) runs before any work and fails with one sentence naming the file and the
bad value (:class:`InputsError`).
"""

import zipfile
from pathlib import Path

import numpy as np

from ..data.datasets import DatasetError
from ..data.evaluate import TestSet

__all__ = ["INPUTS_NAME", "InputsError", "load_inputs"]

#: The dataset name the commands report for ``--inputs`` samples.
INPUTS_NAME = "inputs"


class InputsError(DatasetError):
    """The ``--inputs`` file cannot be used; the message is one sentence."""


def _read(path):
    """``(x, y or None)`` from a ``.npy`` or ``.npz`` file."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InputsError(f"the inputs {path} must be a .npy array or a .npz archive with x "
                          f"(and optionally y), not a {suffix or 'suffix-less'} file")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as archive:
            names = sorted(archive.files)
            if "x" not in names or set(names) - {"x", "y"}:
                raise InputsError(f"the inputs {path} hold the arrays {', '.join(names) or 'none'}"
                                  f"; expected x and optionally y")
            return archive["x"], archive["y"] if "y" in names else None
    except InputsError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputsError(f"the inputs {path} cannot be read as a {suffix} file "
                          f"({' '.join(str(error).split())})") from None


def _check_x(path, x, network):
    spec = network.input
    shape = tuple(spec.shape)
    wanted = f"(N, {', '.join(map(str, shape))})"
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                   or np.issubdtype(x.dtype, np.floating)):
        raise InputsError(f"the inputs {path} have dtype {x.dtype}; expected integer or float "
                          f"raw values")
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise InputsError(f"the inputs {path} have shape {tuple(x.shape)}; the bundle "
                          f"{network.name!r} expects {wanted}")
    if x.shape[0] == 0:
        raise InputsError(f"the inputs {path} hold no samples (shape {tuple(x.shape)})")
    if not np.all(np.isfinite(x)):
        raise InputsError(f"the inputs {path} contain NaN or infinite values")
    low, high = x.min(), x.max()
    if low < spec.raw_min or high > spec.raw_max:
        raise InputsError(f"the inputs {path} span {low:g}..{high:g}, outside the raw range "
                          f"{spec.raw_min:g}..{spec.raw_max:g} of the bundle {network.name!r}")


def _check_y(path, y, count, network):
    classes = network.output_layer.out_shape[0]
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise InputsError(f"the labels y in {path} have dtype {y.dtype}; expected integers")
    if y.shape != (count,):
        raise InputsError(f"the labels y in {path} have shape {tuple(y.shape)}; expected "
                          f"({count},), one per sample of x")
    if y.min() < 0 or y.max() >= classes:
        raise InputsError(f"the labels y in {path} span {int(y.min())}..{int(y.max())}, outside "
                          f"the classes 0..{classes - 1} of the bundle {network.name!r}")


def load_inputs(path, network):
    """The samples of ``path`` for ``network`` as a :class:`~.evaluate.TestSet` named
    ``"inputs"`` (``y`` is ``None`` without labels).

    Raises
    ------
    InputsError
        The file is missing, unreadable or not ``.npy``/``.npz``; the archive lacks ``x`` or
        holds other arrays; ``x`` is not numeric, has another shape than ``(N, *input
        shape)``, is empty, or leaves the bundle's raw range; ``y`` is not one integer class
        per sample.
    """
    path = Path(path)
    if not path.is_file():
        raise InputsError(f"the inputs {path} do not exist or are not a file")
    x, y = _read(path)
    _check_x(path, x, network)
    if y is not None:
        _check_y(path, y, x.shape[0], network)
        y = y.astype(np.int64)
    labelled = "labelled" if y is not None else "no labels"
    return TestSet(INPUTS_NAME, x, y, f"{path} ({x.shape[0]} samples, {labelled})")
