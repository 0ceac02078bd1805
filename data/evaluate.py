"""Run the golden model over a dataset's test split and add up its accuracy and op counts.

This is the engine behind ``spikeforge golden``: it picks the test images a bundle was made
for (:func:`load_test_set`), quantizes them with the bundle's own input spec, and runs
:func:`spikeforge.golden.run` in batches (:func:`evaluate`) so memory stays flat for the
10000 MNIST images. Nothing here prints; the CLI formats the :class:`Evaluation`.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.golden import quantize_input, run

from . import hsi
from .datasets import DIGITS_SPLIT, DatasetError, digits_split, mnist_test

__all__ = [
    "DATASETS",
    "DEFAULT_BUNDLE_NAME",
    "ShapeMismatch",
    "TestSet",
    "LayerCounts",
    "Evaluation",
    "default_bundle_path",
    "load_test_set",
    "class_metrics",
    "evaluate",
]

#: Dataset names the CLI accepts (the hyperspectral ones are :data:`spikeforge.data.hsi.SCENES`).
DATASETS = ("digits", "mnist", *hsi.SCENES)
#: File name of the bundle shipped inside the package (``spikeforge/models``).
DEFAULT_BUNDLE_NAME = "digits_snn.sfb"


class ShapeMismatch(ValueError):
    """The dataset's samples do not have the shape the bundle's input expects."""


def default_bundle_path():
    """Path of the shipped digits bundle, ``<spikeforge package>/models/digits_snn.sfb``.

    The path is returned whether or not the file exists; reading it reports a missing file.
    """
    import spikeforge

    return Path(spikeforge.__file__).resolve().parent / "models" / DEFAULT_BUNDLE_NAME


@dataclass(frozen=True)
class TestSet:
    """Raw test samples ``x`` (N, *sample shape), integer labels ``y`` (N,) and a description.

    ``y`` is ``None`` for unlabelled samples (``--inputs`` without labels, ``tools/inputs.py``).
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    x: np.ndarray
    y: np.ndarray
    description: str
    classes: int | None = None  # set for hyperspectral scenes: OA, AA and kappa are reported


def _digits_test(network):
    recorded = network.dataset.get("split")
    recorded = recorded if isinstance(recorded, dict) else {}
    fraction = recorded.get("test_fraction", DIGITS_SPLIT["test_fraction"])
    seed = recorded.get("seed", DIGITS_SPLIT["seed"])
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction < 1:
        raise DatasetError(f"the bundle's dataset.split.test_fraction is {fraction!r}, "
                           f"not a number between 0 and 1")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"the bundle's dataset.split.seed is {seed!r}, not an integer")
    split = digits_split(test_fraction=fraction, seed=seed)
    source = "bundle" if recorded else "default"
    return TestSet("digits", split.x_test, split.y_test,
                   f"scikit-learn digits, test split (test_fraction={fraction}, seed={seed}, "
                   f"{source})")


def _hsi_test(name, network, data_dir):
    """The hyperspectral test patches a bundle's ``dataset["hsi"]`` record describes."""
    record = network.dataset.get("hsi")
    if not isinstance(record, dict):
        scene = hsi.load_scene(name, data_dir)
        raise DatasetError(
            f"the {hsi.SCENES[name].title} scene loaded ({scene.cube.shape[0]}x"
            f"{scene.cube.shape[1]} pixels, {scene.cube.shape[2]} bands, {scene.labelled} "
            f"labelled) but the bundle {network.name!r} records no hyperspectral pipeline "
            f"(dataset.hsi), so its input of shape {tuple(network.input.shape)} cannot be built; "
            f"patch extraction without that record is not implemented")
    if record.get("scene") != name:
        raise DatasetError(f"the bundle {network.name!r} was made for the hyperspectral scene "
                           f"{record.get('scene')!r}, not {name!r}")
    x, y, description = hsi.rebuild_test(record, data_dir)
    return TestSet(name, x, y, description, classes=int(record.get("classes", y.max() + 1)))


def load_test_set(name, network, data_dir):
    """The test split of dataset ``name`` for ``network``, as raw values.

    Parameters
    ----------
    name : {"digits", "mnist", "indian-pines"}
    network : Network
        Supplies the digits split recorded in ``network.dataset["split"]`` (keys
        ``test_fraction`` and ``seed``; ``DIGITS_SPLIT`` when absent) and the input shape.
    data_dir : path or None
        Folder holding ``mnist/`` and ``hsi/``; unused for digits.

    Raises
    ------
    DatasetError
        A file is missing or malformed, or (Indian Pines) the bundle's input cannot be built.
    ShapeMismatch
        The samples' shape differs from ``network.input.shape``.
    """
    if name == "digits":
        test = _digits_test(network)
    elif name == "mnist":
        x, y = mnist_test(data_dir)
        test = TestSet("mnist", x, y, "MNIST t10k (official test set)")
    elif name in hsi.SCENES:
        test = _hsi_test(name, network, data_dir)
    else:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    sample = tuple(test.x.shape[1:])
    if sample != tuple(network.input.shape):
        raise ShapeMismatch(f"the {name} samples have shape {sample} but the bundle "
                            f"{network.name!r} expects input shape {tuple(network.input.shape)}")
    return test


@dataclass
class LayerCounts:
    """Totals over all evaluated images and timesteps for one layer."""

    name: str
    type: str
    neurons: int
    synaptic_ops: int | None = None
    spikes: int | None = None


@dataclass
class Evaluation:
    """What :func:`evaluate` returns; every count is a Python ``int`` summed over images."""

    images: int
    correct: int | None       # None without labels
    timesteps: int
    first_layer_macs: int
    layers: list = field(default_factory=list)
    predictions: np.ndarray | None = None  # (images,) int64, in sample order

    @property
    def accuracy(self):
        """Fraction correct; ``None`` without labels."""
        if self.correct is None:
            return None
        return self.correct / self.images if self.images else 0.0

    @property
    def synaptic_ops(self):
        return sum(layer.synaptic_ops or 0 for layer in self.layers)

    @property
    def spikes(self):
        return sum(layer.spikes or 0 for layer in self.layers)


def class_metrics(test, evaluation):
    """OA, AA, kappa and per-class accuracy (fractions) of an evaluated hyperspectral test set.

    ``None`` unless ``test.classes`` is set. The labels are the first ``evaluation.images`` of
    ``test.y`` (``--limit`` evaluates a prefix).
    """
    if test.classes is None:
        return None
    labels = test.y[:evaluation.images]
    metrics = hsi.classification_metrics(labels, evaluation.predictions, test.classes)
    return {"oa": metrics["oa"], "aa": metrics["aa"], "kappa": metrics["kappa"],
            "per_class_accuracy": metrics["per_class"]}


def evaluate(network, raw, labels, *, batch_size=256, progress=None):
    """Run the golden model on raw samples in batches; return an :class:`Evaluation`.

    ``raw`` is quantized with ``quantize_input(raw, network.input)``. ``labels`` may be
    ``None`` (then ``correct`` and ``accuracy`` are ``None``). ``progress``, when given, is
    called as ``progress(done, total)`` after every batch.
    """
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, not {batch_size}")
    total = int(raw.shape[0])
    counted = [layer for layer in network.layers
               if layer.is_synaptic and not layer.is_direct_encoded
               or layer.type in ("avgpool2d", "add")
               or layer.neuron is not None and layer.output == "spikes"]
    layers = {layer.name: LayerCounts(layer.name, layer.type, layer.neurons) for layer in counted}
    correct = macs = 0
    predictions = []
    for start in range(0, total, batch_size):
        x = quantize_input(raw[start:start + batch_size], network.input)
        result = run(network, x)
        if labels is not None:
            correct += int((result.predictions == labels[start:start + batch_size]).sum())
        predictions.append(result.predictions)
        macs += int(result.first_layer_macs.sum())
        for name, ops in result.synaptic_ops.items():
            layers[name].synaptic_ops = (layers[name].synaptic_ops or 0) + int(ops.sum())
        for name, spikes in result.spikes.items():
            layers[name].spikes = (layers[name].spikes or 0) + int(spikes.sum())
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return Evaluation(images=total, correct=None if labels is None else correct,
                      timesteps=network.timesteps,
                      first_layer_macs=macs, layers=list(layers.values()),
                      predictions=np.concatenate(predictions) if predictions
                      else np.zeros(0, dtype=np.int64))
