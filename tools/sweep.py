"""``spikeforge sweep membrane``: golden-model accuracy of a bundle at narrower membrane widths.

For every width ``B`` the bundle is re-exported with :func:`spikeforge.train.membrane.
narrow_network` (thresholds, biases and weights scaled down by powers of two where a layer
does not fit ``B`` bits, the input narrowed for the direct-encoded layer; see that module for
the method) and the golden model measures its accuracy on the dataset's test split. The
output layer's scaling is calibrated on training images (never test images): the first
``calibration`` images of the training split (digits: the split recorded in the bundle;
MNIST: the official training set). Nothing here imports torch.
"""

from pathlib import Path

from spikeforge.golden import quantize_input, write_bundle
from spikeforge.golden.bundle import network_to_parts
from spikeforge.train.membrane import MIN_MEMBRANE_BITS, narrow_network, output_peak

from ..data.datasets import DatasetError, digits_split, mnist_split
from ..data.evaluate import evaluate, load_test_set
from .inputs import INPUTS_NAME

__all__ = ["MAX_MEMBRANE_BITS", "parse_bits", "calibration_inputs", "membrane_sweep",
           "sweep_lines"]

#: The widest membrane the bundle format allows.
MAX_MEMBRANE_BITS = 32


def parse_bits(text):
    """``"16,12,8"`` -> ``(16, 12, 8)``; raise ``ValueError`` naming a bad entry."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"membrane width {part!r} is not a whole number") from None
        if not MIN_MEMBRANE_BITS <= value <= MAX_MEMBRANE_BITS:
            raise ValueError(f"membrane width {value} is outside {MIN_MEMBRANE_BITS}.."
                             f"{MAX_MEMBRANE_BITS} bits")
        if value in values:
            raise ValueError(f"membrane width {value} is listed twice")
        values.append(value)
    return tuple(values)


def calibration_inputs(dataset, network, data_dir, count):
    """The first ``count`` training images of ``dataset``, quantized for ``network``."""
    if dataset == "digits":
        recorded = network.dataset.get("split")
        recorded = recorded if isinstance(recorded, dict) else {}
        split = digits_split(test_fraction=recorded.get("test_fraction", 0.25),
                             seed=recorded.get("seed", 0))
    elif dataset == "mnist":
        split = mnist_split(data_dir)
    else:
        raise DatasetError(f"the membrane sweep has no training images for {dataset!r}")
    return quantize_input(split.x_train[:count], network.input)


def membrane_sweep(network, dataset, bits, *, data_dir=None, limit=None, calibration=256,
                   batch_size=256, out_dir=None, stem=None, progress=None, test=None):
    """Accuracy of ``network`` re-exported at each membrane width in ``bits``.

    Parameters
    ----------
    network : spikeforge.golden.Network
    dataset : {"digits", "mnist"}
    bits : sequence of int
    data_dir : path, optional
        Folder holding ``mnist/``.
    limit : int, optional
        Use only the first ``limit`` test images.
    calibration : int
        Training images for the output layer's peak membrane (:func:`output_peak`).
    out_dir : path, optional
        Also write each narrowed bundle there as ``<stem>_m<B>.sfb``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each width.
    test : TestSet, optional
        Labelled samples to use instead of ``dataset``'s test split (``--inputs``); the
        output layer's peak is then calibrated on their first ``calibration`` samples.

    Returns
    -------
    dict
        The summary (``rows``: one per width, with ``accuracy``, ``correct``, ``input_bits``,
        ``shifts`` and ``delta`` = accuracy minus the original's).
    """
    if test is None:
        test = load_test_set(dataset, network, data_dir)
        calibrating = calibration_inputs(dataset, network, data_dir, calibration)
    else:
        calibrating = quantize_input(test.x[:calibration], network.input)
    count = test.x.shape[0] if limit is None else min(limit, test.x.shape[0])
    raw, labels = test.x[:count], test.y[:count]
    peak = output_peak(network, calibrating)
    original = evaluate(network, raw, labels, batch_size=batch_size)
    rows = []
    for width in bits:
        narrowed, shifts = narrow_network(network, width, peak=peak)
        result = evaluate(narrowed, raw, labels, batch_size=batch_size)
        row = {"bits": width, "accuracy": result.accuracy, "correct": result.correct,
               "delta": result.accuracy - original.accuracy,
               "input_bits": narrowed.input.bits, "shifts": {k: v for k, v in shifts.items()
                                                             if k != "input_bits" and v},
               "synaptic_ops_per_image": result.synaptic_ops / count}
        if out_dir is not None:
            path = Path(out_dir) / f"{stem or network.name}_m{width}.sfb"
            write_bundle(path, *network_to_parts(narrowed))
            row["bundle"] = str(path)
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(bits))
    return {"bundle": network.name, "dataset": dataset, "test": test.description,
            "images": count, "timesteps": network.timesteps,
            "original_bits": network.membrane_bits, "original_accuracy": original.accuracy,
            "original_input_bits": network.input.bits,
            "calibration_images": int(calibrating.shape[0]),
            "calibration_on": "--inputs samples" if dataset == INPUTS_NAME else "training images",
            "output_peak": peak, "rows": rows}


def sweep_lines(summary):
    """The sweep as a text table."""
    lines = [f"membrane sweep of {summary['bundle']} (T={summary['timesteps']}, originally "
             f"{summary['original_bits']}-bit membrane, {summary['original_input_bits']}-bit "
             f"input): golden model on {summary['images']} images of {summary['test']}",
             f"original accuracy {100 * summary['original_accuracy']:.2f} %; output peak "
             f"|V| {summary['output_peak']} on {summary['calibration_images']} "
             f"{summary['calibration_on']}",
             "",
             f"{'bits':>4}  {'input':>5}  {'accuracy':>8}  {'delta':>6}  {'ops/image':>10}  "
             f"rescaled layers (right shift)"]
    for row in summary["rows"]:
        shifted = ", ".join(f"{name}>>{k}" for name, k in row["shifts"].items()) or "-"
        lines.append(f"{row['bits']:>4}  {row['input_bits']:>5}  "
                     f"{100 * row['accuracy']:>7.2f}%  {100 * row['delta']:>+6.2f}  "
                     f"{row['synaptic_ops_per_image']:>10.0f}  {shifted}")
    return lines
