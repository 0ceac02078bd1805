"""Hyperspectral scenes: loading, integer PCA, spatial patches, splits and HSI metrics.

NumPy/SciPy only (no torch), so ``spikeforge golden`` can rebuild a bundle's test inputs.

The pipeline, recorded in a bundle's ``dataset["hsi"]`` (:func:`pipeline_record`) so that the
test inputs are rebuilt bit for bit without re-fitting anything:

1. **Scene.** The ``.mat`` cube ``(H, W, bands)`` of raw sensor counts and its ``(H, W)``
   ground truth; label 0 (unlabelled) is never used, classes ``1..K`` become ``0..K-1``.
2. **Integer PCA** (:func:`fit_pca`, fitted once at training time on *every* pixel of the
   scene, labelled or not: the usual unsupervised, transductive HybridSN-style preprocessing).
   The bands are standardised, the top ``k`` principal components taken and each scaled to unit
   variance; all of this is folded into one integer matrix ``weights`` (``k x bands``, int16
   range) and integer band ``mean``: ``raw[k] = sum_b (cube[b] - mean[b]) * weights[k, b] *
   2**-shift``. The sum is exact in ``int64`` and the power-of-two scaling is exact in float64,
   so the projection is the same on every machine; no floating-point SVD runs at evaluation.
3. **Input quantisation.** The bundle's ``input`` spec maps ``raw`` onto unsigned integers
   (``spikeforge.golden.quantize_input``), like any other dataset.
4. **Patches.** The ``(H, W, k)`` map is padded by ``size // 2`` pixels with reflection
   (NumPy's ``mode="reflect"``: the edge pixel is not repeated); the patch of pixel ``(i, j)``
   is the ``size x size`` window centred on it, laid out ``(1, k, size, size)`` (channel,
   spectral depth, rows, columns) for conv3d.
5. **Split** (:func:`random_split`, :func:`disjoint_split`): labelled pixels in row-major
   order, stratified per class with a stated training fraction and seed; the test pixel list's
   SHA-256 is recorded and checked when the split is rebuilt.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .datasets import DatasetError

__all__ = ["SCENES", "HSIScene", "load_scene", "fit_pca", "project", "patches", "random_split",
           "disjoint_split", "split_hash", "classification_metrics"]


@dataclass(frozen=True)
class _SceneFiles:
    title: str
    cube: str
    cube_keys: tuple
    gt: str
    gt_keys: tuple


#: Scene name -> its ``.mat`` files (in ``<data_dir>/hsi``) and the usual variable names.
SCENES = {
    "indian-pines": _SceneFiles("Indian Pines", "Indian_pines_corrected.mat",
                                ("indian_pines_corrected", "Indian_pines_corrected",
                                 "indian_pines"), "Indian_pines_gt.mat",
                                ("indian_pines_gt", "Indian_pines_gt")),
    "pavia-university": _SceneFiles("Pavia University", "PaviaU.mat",
                                    ("paviaU", "PaviaU", "pavia_u", "paviau"), "PaviaU_gt.mat",
                                    ("paviaU_gt", "PaviaU_gt", "pavia_u_gt")),
    "salinas": _SceneFiles("Salinas", "Salinas_corrected.mat",
                           ("salinas_corrected", "Salinas_corrected", "salinas"),
                           "Salinas_gt.mat", ("salinas_gt", "Salinas_gt")),
}


@dataclass(frozen=True)
class HSIScene:
    """A scene: ``cube`` (H, W, bands) raw counts, ``gt`` (H, W) int64 labels (0 = none)."""

    name: str
    cube: np.ndarray
    gt: np.ndarray

    @property
    def labelled(self):
        return int((self.gt > 0).sum())

    @property
    def num_classes(self):
        return int(self.gt.max())


def _read_mat(path, keys, ndim, what):
    from scipy.io import loadmat

    with open(path, "rb") as handle:
        header = handle.read(128)
    if header.startswith(b"MATLAB 7.3"):
        raise DatasetError(f"the dataset file {path} is a MATLAB v7.3 (HDF5) file, which "
                           f"spikeforge does not read; save it again as a v7 MAT-file "
                           f"(MATLAB: save(name, var, '-v7'))")
    try:
        content = loadmat(path)
    except Exception as error:  # scipy raises several unrelated types for bad files
        raise DatasetError(f"the dataset file {path} cannot be read as a MATLAB file "
                           f"({type(error).__name__}: {error})") from None
    arrays = {k: v for k, v in content.items()
              if not k.startswith("__") and isinstance(v, np.ndarray)}
    found = [k for k in keys if k in arrays]
    if not found:   # an unusual variable name: accept the only array of the right rank
        found = [k for k, v in arrays.items() if v.ndim == ndim]
        if len(found) != 1:
            raise DatasetError(f"the dataset file {path} has no {what} variable (expected one "
                               f"of {', '.join(keys)}; it holds {', '.join(arrays) or 'none'})")
    value = arrays[found[0]]
    if value.ndim != ndim or not np.issubdtype(value.dtype, np.number):
        raise DatasetError(f"the dataset file {path} holds {found[0]!r} of shape {value.shape}, "
                           f"not a numeric {what}")
    return value


def load_scene(name, data_dir):
    """Load scene ``name`` (a key of :data:`SCENES`) from ``<data_dir>/hsi``.

    Raises :class:`DatasetError` (one sentence naming the file) when a file is missing,
    unreadable, a MATLAB v7.3 file, or holds no cube / matching label map.
    """
    if name not in SCENES:
        raise DatasetError(f"unknown hyperspectral scene {name!r}; expected one of "
                           f"{', '.join(SCENES)}")
    files = SCENES[name]
    if data_dir is None:
        raise DatasetError("no dataset folder was found (looked for ../shared/datasets next to "
                           "the current directory and the repository); pass --data-dir")
    folder = Path(data_dir) / "hsi"
    for role, file_name in (("cube", files.cube), ("ground truth", files.gt)):
        if not (folder / file_name).is_file():
            raise DatasetError(f"the {files.title} {role} file {file_name} is missing; put it "
                               f"in {folder} (the GIC UPV/EHU 'Hyperspectral Remote Sensing "
                               f"Scenes' file of that name)")
    cube = _read_mat(folder / files.cube, files.cube_keys, 3, "(H, W, bands) cube")
    gt = _read_mat(folder / files.gt, files.gt_keys, 2, "(H, W) label map")
    if gt.shape != cube.shape[:2] or not np.issubdtype(gt.dtype, np.integer) or gt.min() < 0:
        raise DatasetError(f"the dataset file {folder / files.gt} holds labels of shape "
                           f"{gt.shape}, not non-negative integers of the cube's spatial shape "
                           f"{cube.shape[:2]}")
    if gt.max() < 1:
        raise DatasetError(f"the dataset file {folder / files.gt} labels no pixel")
    return HSIScene(name, cube, gt.astype(np.int64))


# --------------------------------------------------------------------------- integer PCA

def fit_pca(cube, components):
    """Fit the integer PCA of ``cube`` (all pixels): returns ``(mean, weights, shift)``.

    ``mean`` (bands,) and ``weights`` (components, bands) are int64 lists-to-be; ``shift`` is
    chosen so that the largest ``|weight|`` is just below ``2**15``. Each component has unit
    variance over the scene (up to the integer rounding); its sign makes its largest-magnitude
    loading positive, so a fit is reproducible.
    """
    bands = cube.shape[-1]
    if not 1 <= components <= bands:
        raise ValueError(f"components is {components}; the scene has {bands} bands")
    pixels = cube.reshape(-1, bands).astype(np.float64)
    mean = np.floor(pixels.mean(axis=0) + 0.5)
    centred = pixels - mean
    std = centred.std(axis=0)
    std[std == 0] = 1.0
    standard = centred / std
    covariance = standard.T @ standard / max(1, len(standard) - 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:components]
    basis = vectors[:, order].T                                   # (k, bands)
    signs = np.sign(basis[np.arange(components), np.abs(basis).argmax(axis=1)])
    basis = basis * signs[:, None]
    real = basis / std[None, :] / np.sqrt(np.maximum(values[order], 1e-12))[:, None]
    shift = int(14 - np.floor(np.log2(np.abs(real).max())))
    weights = np.floor(real * 2.0 ** shift + 0.5).astype(np.int64)
    return mean.astype(np.int64), weights, shift


def project(cube, mean, weights, shift):
    """``(cube - mean) @ weights.T * 2**-shift`` as float64 (H, W, k), exact (see module doc)."""
    centred = np.asarray(cube, dtype=np.int64) - np.asarray(mean, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.int64)
    bound = int(np.abs(centred).max(initial=0)) * int(np.abs(weights).sum(axis=1).max())
    if bound >= 1 << 53:
        raise DatasetError(f"the PCA projection can reach {bound}, beyond exact float64")
    # einsum on int64 is exact whatever its summation order (no overflow: bound < 2**53).
    total = np.einsum("hwb,kb->hwk", centred, weights)
    return np.ldexp(total.astype(np.float64), -int(shift))


def patches(values, pixels, size):
    """Patches ``(N, 1, k, size, size)`` of ``values`` (H, W, k) centred on flat ``pixels``.

    The map is padded by ``size // 2`` with NumPy's ``mode="reflect"`` first.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the patch size is {size}; it must be a positive odd number")
    radius = size // 2
    padded = np.pad(values, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    view = sliding_window_view(padded, (size, size), axis=(0, 1))   # (H, W, k, size, size)
    rows, cols = np.divmod(np.asarray(pixels, dtype=np.int64), values.shape[1])
    return np.ascontiguousarray(view[rows, cols][:, None])


# --------------------------------------------------------------------------- splits

def _class_pixels(gt):
    flat = gt.reshape(-1)
    return {c: np.flatnonzero(flat == c) for c in range(1, int(gt.max()) + 1)}


def _target(fraction, count):
    """Training pixels of a class of ``count``: ``round_half_up(fraction * count)``, >= 1."""
    return min(count, max(1, int(np.floor(fraction * count + 0.5))))


def split_hash(pixels):
    """``sha256:`` of the sorted flat pixel indices as little-endian int64 bytes."""
    data = np.sort(np.asarray(pixels, dtype="<i8")).tobytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_split(gt, fraction, seed):
    """Stratified random pixel split: ``(train, test)`` sorted flat indices into ``gt``.

    Per class ``c = 1..K`` in order, ``numpy.random.RandomState(seed).permutation`` (one
    generator for all classes, whose stream NumPy keeps stable across versions) of the class's
    row-major pixels; the first ``round_half_up(fraction * n_c)`` (at least 1) train.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the training fraction is {fraction}; it must lie strictly in 0..1")
    rng = np.random.RandomState(seed)
    train, test = [], []
    for pixels in _class_pixels(gt).values():
        if len(pixels) == 0:
            continue
        order = rng.permutation(pixels)
        count = _target(fraction, len(pixels))
        train.append(order[:count])
        test.append(order[count:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def disjoint_split(gt, fraction, seed, *, radius):
    """Spatially disjoint split: no test pixel lies within ``radius`` of a training pixel.

    Per class ``c = 1..K`` in order, an angle ``a`` is drawn from one
    ``numpy.random.RandomState(seed)`` (``uniform(0, 2 pi)``); the class's pixels are sorted by
    ``row * sin(a) + col * cos(a)`` (stable sort, row-major ties) and the first
    ``round_half_up(fraction * n_c)`` (at least 1) train: a straight cut through each class, so
    the per-class training counts equal :func:`random_split`'s. Test pixels are the other
    labelled pixels whose Chebyshev distance to every training pixel exceeds ``radius``
    (= patch size // 2: no training patch covers a test pixel, and no test patch a training
    pixel); labelled pixels inside that buffer are used for neither. Small classes may end up
    with no test pixel at all.

    Returns ``(train, test, buffer)`` sorted flat indices.
    """
    from scipy.ndimage import maximum_filter

    if not 0 < fraction < 1:
        raise ValueError(f"the training fraction is {fraction}; it must lie strictly in 0..1")
    rng = np.random.RandomState(seed)
    width = gt.shape[1]
    train_mask = np.zeros(gt.size, dtype=bool)
    for pixels in _class_pixels(gt).values():
        angle = rng.uniform(0.0, 2.0 * np.pi)
        if len(pixels) == 0:
            continue
        rows, cols = np.divmod(pixels, width)
        order = np.argsort(rows * np.sin(angle) + cols * np.cos(angle), kind="stable")
        train_mask[pixels[order[:_target(fraction, len(pixels))]]] = True
    train_mask = train_mask.reshape(gt.shape)
    labelled = gt > 0
    near = maximum_filter(train_mask, size=2 * radius + 1, mode="constant", cval=False)
    test_mask = labelled & ~near
    buffer_mask = labelled & near & ~train_mask
    return (np.flatnonzero(train_mask), np.flatnonzero(test_mask),
            np.flatnonzero(buffer_mask))


# --------------------------------------------------------------------------- metrics

def classification_metrics(labels, predictions, num_classes):
    """Overall accuracy, average (per-class) accuracy and Cohen's kappa, as fractions.

    AA averages the recall of the classes present in ``labels``. Returns a dict with ``oa``,
    ``aa``, ``kappa``, ``per_class`` (recall per class index, ``None`` when absent) and
    ``confusion`` (rows: true class, columns: predicted).
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    total = int(confusion.sum())
    support = confusion.sum(axis=1)
    per_class = [None if support[c] == 0 else float(confusion[c, c] / support[c])
                 for c in range(num_classes)]
    present = [v for v in per_class if v is not None]
    oa = float(np.trace(confusion) / total) if total else 0.0
    chance = float((support * confusion.sum(axis=0)).sum()) / total ** 2 if total else 0.0
    kappa = (oa - chance) / (1 - chance) if chance < 1 else 1.0
    return {"oa": oa, "aa": float(np.mean(present)) if present else 0.0, "kappa": float(kappa),
            "per_class": per_class, "confusion": confusion.tolist()}


# --------------------------------------------------------------------------- the recorded pipeline

@dataclass(frozen=True)
class HSISplit:
    """Raw patches ``(N, 1, k, size, size)`` float64 and labels ``0..K-1`` of both splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    record: dict


def build(scene, *, components, patch, split="random", fraction=0.3, seed=0):
    """Fit the pipeline on ``scene`` and cut the split; return an :class:`HSISplit`.

    ``split`` is ``"random"`` (:func:`random_split`) or ``"disjoint"`` (:func:`disjoint_split`
    with ``radius = patch // 2``). ``record`` holds everything :func:`rebuild_test` needs.
    """
    mean, weights, shift = fit_pca(scene.cube, components)
    if split == "random":
        train, test = random_split(scene.gt, fraction, seed)
        buffer = np.zeros(0, dtype=np.int64)
    elif split == "disjoint":
        train, test, buffer = disjoint_split(scene.gt, fraction, seed, radius=patch // 2)
    else:
        raise ValueError(f"unknown split kind {split!r}; expected 'random' or 'disjoint'")
    record = {
        "scene": scene.name, "shape": list(scene.cube.shape), "classes": scene.num_classes,
        "pca": {"fit": "all pixels of the scene (unsupervised), bands standardised, components "
                       "scaled to unit variance, folded into integers",
                "components": int(components), "shift": int(shift),
                "mean": mean.tolist(), "weights": weights.tolist()},
        "patch": {"size": int(patch), "padding": "reflect (numpy mode='reflect')",
                  "layout": "(1, components, size, size)"},
        "split": {"kind": split, "train_fraction": float(fraction), "seed": int(seed),
                  "order": "labelled pixels in row-major order, classes 1..K",
                  "train_pixels": int(len(train)), "test_pixels": int(len(test)),
                  "test_sha256": split_hash(test)},
    }
    if split == "disjoint":
        record["split"].update(radius=patch // 2, buffer_pixels=int(len(buffer)))
    raw = project(scene.cube, mean, weights, shift)
    labels = scene.gt.reshape(-1) - 1
    return HSISplit(patches(raw, train, patch), labels[train], patches(raw, test, patch),
                    labels[test], record)


def _field(record, path, kind):
    value = record
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise DatasetError(f"the bundle's dataset.hsi is missing the field {path!r}")
        value = value[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise DatasetError(f"the bundle's dataset.hsi.{path} is {value!r}, not an integer")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise DatasetError(f"the bundle's dataset.hsi.{path} is {value!r}, not a number")
    if kind in (str, list) and not isinstance(value, kind):
        raise DatasetError(f"the bundle's dataset.hsi.{path} is not a {kind.__name__}")
    return value


def rebuild_test(record, data_dir):
    """The test split a bundle's ``dataset["hsi"]`` record describes: ``(x, y, description)``.

    Nothing is fitted: the recorded integer PCA is applied, the split recomputed from its kind,
    fraction and seed, and its SHA-256 checked against the record (:class:`DatasetError` on any
    difference or malformed field).
    """
    if not isinstance(record, dict):
        raise DatasetError("the bundle's dataset has no 'hsi' record describing its "
                           "hyperspectral input pipeline")
    scene = load_scene(_field(record, "scene", str), data_dir)
    components, shift = _field(record, "pca.components", int), _field(record, "pca.shift", int)
    mean = np.asarray(_field(record, "pca.mean", list))
    weights = np.asarray(_field(record, "pca.weights", list))
    bands = scene.cube.shape[2]
    if mean.shape != (bands,) or weights.shape != (components, bands) \
            or not np.issubdtype(mean.dtype, np.integer) \
            or not np.issubdtype(weights.dtype, np.integer):
        raise DatasetError(f"the bundle's dataset.hsi.pca does not hold integer mean ({bands},) "
                           f"and weights ({components}, {bands}) for the {scene.name} cube")
    size = _field(record, "patch.size", int)
    kind = _field(record, "split.kind", str)
    fraction = _field(record, "split.train_fraction", float)
    seed = _field(record, "split.seed", int)
    if kind == "random":
        _, test = random_split(scene.gt, fraction, seed)
    elif kind == "disjoint":
        _, test, _ = disjoint_split(scene.gt, fraction, seed,
                                    radius=_field(record, "split.radius", int))
    else:
        raise DatasetError(f"the bundle's dataset.hsi.split.kind is {kind!r}; expected "
                           f"'random' or 'disjoint'")
    expected = _field(record, "split.test_sha256", str)
    if split_hash(test) != expected:
        raise DatasetError(f"the rebuilt {scene.name} test split differs from the one the "
                           f"bundle records ({expected}); the ground truth file changed")
    raw = project(scene.cube, mean, weights, shift)
    labels = scene.gt.reshape(-1)[test] - 1
    description = (f"{SCENES[scene.name].title}, {kind} stratified split, train fraction "
                   f"{fraction}, seed {seed}: {len(test)} test pixels, {size}x{size} patches of "
                   f"{components} PCA components (bundle)")
    return patches(raw, test, size), labels, description
