"""``spikeforge sweep membrane``: golden-model accuracy of a bundle at narrower membrane widths.

For every width ``B`` the bundle is re-exported with :func:`spikeforge.train.membrane.
narrow_network` (thresholds, biases and weights scaled down by powers of two where a layer
does not fit ``B`` bits, the input narrowed for the direct-encoded layer; see that module for
the method) and the golden model measures its accuracy on the dataset's test split. The
output layer's scaling is calibrated on training images (never test images): the first
``calibration`` images of the training split (digits: the split recorded in the bundle;
MNIST: the official training set). Nothing here imports torch.
"""

import argparse
from pathlib import Path

from spikeforge.golden import quantize_input, write_bundle
from spikeforge.golden.bundle import network_to_parts
from spikeforge.golden.manifest import MEMBRANE_BITS
from spikeforge.train.membrane import MIN_MEMBRANE_BITS, narrow_network, output_peak

from ..data.datasets import DatasetError, digits_split, mnist_split
from ..data.evaluate import evaluate, load_test_set
from .inputs import INPUTS_NAME
from .options import (
    CLIError, add_bundle, add_data_dir, add_dataset, add_inputs, add_json, data_dir,
    load_bundle, positive_int, printed, samples_for,
)
from .progress import Bar, wanted

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "MAX_MEMBRANE_BITS", "SWEEP_DATASETS",
           "parse_bits", "calibration_inputs", "membrane_sweep", "sweep_lines"]

#: The widest membrane the bundle format allows.
MAX_MEMBRANE_BITS = MEMBRANE_BITS[1]
#: The test sets the sweep has training images for (to calibrate the output layer).
SWEEP_DATASETS = ("digits", "mnist")


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


# ------------------------------------------------------------------------- the command

HELP = "golden accuracy of a bundle re-exported at narrower membrane widths"
DESCRIPTION = ("Re-export the bundle for each membrane width (thresholds, biases and weights "
               "scaled down by powers of two where a layer does not fit, the input narrowed for "
               "the first layer; spikeforge.train.membrane explains the method) and print the "
               "golden model's test accuracy per width. The output layer's scaling is "
               "calibrated on training images.")


def _bits(text):
    try:
        return parse_bits(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser):
    add_bundle(parser)
    add_dataset(parser, SWEEP_DATASETS)
    add_inputs(parser)
    parser.add_argument("--bits", type=_bits, default=(16, 12, 10, 8, 6), metavar="B,B,...",
                        help="membrane widths, comma-separated (default 16,12,10,8,6)")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="use only the first N test images")
    parser.add_argument("--calibration", type=positive_int, default=256, metavar="N",
                        help="training images for the output layer's peak (default 256)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help="also write each narrowed bundle to DIR/<name>_m<B>.sfb")
    add_data_dir(parser)
    add_json(parser)


def run(args):
    network, path = load_bundle(args.bundle)
    if args.out_dir is not None and not args.out_dir.is_dir():
        raise CLIError(f"the output folder {args.out_dir} does not exist")
    test = None
    if args.inputs is not None:
        test = samples_for(args, network)
        if test.y is None:
            raise CLIError(f"the sweep compares accuracies, so --inputs needs labels: "
                           f"{args.inputs} has no y")
        dataset = test.name
    else:
        dataset = args.dataset or network.dataset.get("name")
        if dataset not in SWEEP_DATASETS:
            raise CLIError(f"the bundle {network.name!r} names no dataset the sweep supports; "
                           f"pass --dataset ({', '.join(SWEEP_DATASETS)}) or --inputs")
    folder = None if dataset in ("digits", INPUTS_NAME) else data_dir(args.data_dir)
    try:
        with Bar(len(args.bits), "sweep", enabled=wanted(args.json), unit="width") as bar:
            summary = membrane_sweep(network, dataset, args.bits, data_dir=folder, test=test,
                                     limit=args.limit, calibration=args.calibration,
                                     out_dir=args.out_dir, stem=path.stem,
                                     progress=bar.counter())
    except ValueError as error:   # a width too narrow for an avg-pool neuron or a leak
        raise CLIError(str(error)) from None
    return printed(args, summary, sweep_lines)
