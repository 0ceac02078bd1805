"""What every ``spikeforge`` command shares: the usage error, the argument types, the common
options (declared once here, with one help text each) and the checks made before any work.

A command module (``tools/<command>.py``) provides ``HELP``, ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args)``; ``run`` returns an :class:`Output` and raises
:class:`CLIError` (or one of the library's input errors, :data:`USER_ERRORS`) for anything
wrong with the user's input, which ``tools/cli.py`` turns into one line on stderr and exit
status 2.
"""

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from spikeforge.golden import BundleError, read_bundle
from spikeforge.golden.manifest import WEIGHT_BITS

from ..data.datasets import DatasetError, default_data_dir
from ..data.evaluate import DATASETS, ShapeMismatch, default_bundle_path, load_test_set

__all__ = ["CLIError", "Parser", "Output", "USER_ERRORS", "EXIT_USAGE", "positive_int",
           "non_negative_int", "in_range", "weight_bits", "fraction", "comma_list",
           "add_bundle", "add_json", "add_out_folder", "add_data_dir", "add_dataset",
           "add_inputs", "add_images", "add_pes", "add_membrane_bits", "add_simulator",
           "add_averaged_design", "load_bundle", "data_dir", "training_data_dir",
           "check_writable", "check_bundle_out", "check_output_folder", "with_pes",
           "with_membrane_bits", "check_membrane_bits", "check_pes", "samples_for", "dataset_name",
           "first_test_images", "printed", "one_line", "log"]

#: Exit status of a usage error (a bad option, a missing or invalid input file).
EXIT_USAGE = 2


class CLIError(Exception):
    """A usage problem; the message is one sentence."""


#: The library's errors that mean "your input is wrong" (exit status 2, like CLIError).
USER_ERRORS = (CLIError, BundleError, DatasetError, ShapeMismatch)


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line instead of usage text plus a message."""

    def error(self, message):
        raise CLIError(message)


@dataclass(frozen=True)
class Output:
    """What a command prints on stdout, and its exit status (1: the RTL disagreed with the
    golden model, or the design exceeds the device)."""

    text: str
    status: int = 0


# --------------------------------------------------------------------- argument types

def _whole_number(text, low, below):
    """``int(text)`` if at least ``low``, else an argparse error ending in ``below``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} {below}")
    return value


def positive_int(text):
    return _whole_number(text, 1, "is not a positive number")


def non_negative_int(text):
    return _whole_number(text, 0, "is a negative number")


def in_range(limits, what):
    """An argument type for a whole number in ``limits`` (inclusive ``(low, high)``, the
    owner's constant), refused as "``N`` is outside the supported ``what`` low..high"."""
    low, high = limits

    def parse(text):
        value = positive_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside the supported {what} "
                                             f"{low}..{high}")
        return value
    return parse


#: A weight width the bundle format allows.
weight_bits = in_range(WEIGHT_BITS, "weight bits")


def fraction(text, *, low_inclusive=False, meaning="a fraction strictly between 0 and 1"):
    """A float in ``0 < F < 1`` (``0 <= F < 1`` with ``low_inclusive``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 <= value if low_inclusive else 0 < value) or not value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not {meaning}")
    return value


def comma_list(item):
    """An argument type for ``A,B,...`` of ``item`` values, duplicates dropped."""
    def parse(text):
        values = []
        for part in text.split(","):
            value = item(part.strip())
            if value not in values:
                values.append(value)
        return tuple(values)
    return parse


# --------------------------------------------------------------------- common options

def add_bundle(parser):
    parser.add_argument("bundle", nargs="?", metavar="BUNDLE",
                        help="model bundle (.sfb); default: the shipped digits model")


def add_json(parser, what="one JSON object"):
    parser.add_argument("--json", action="store_true", help=f"print {what}")


def add_out_folder(parser):
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder to write (created if missing)")


def add_data_dir(parser, note=""):
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder holding the datasets (mnist/, hsi/; default "
                             "../shared/datasets next to the current directory or the "
                             "repository)" + (f"; {note}" if note else ""))


def add_dataset(parser, choices=DATASETS):
    parser.add_argument("--dataset", choices=choices,
                        help="test set; default: the dataset named in the bundle")


def add_inputs(parser):
    parser.add_argument("--inputs", type=Path, metavar="FILE",
                        help="your own raw samples instead of the dataset's test split: a .npy "
                             "array of shape (N, *input shape) in the bundle's raw range, or a "
                             ".npz with x and optional integer labels y")


def add_images(parser, default, what="the first N test images", *, allow_zero=False):
    parser.add_argument("--images", type=non_negative_int if allow_zero else positive_int,
                        default=default, metavar="N", help=f"{what} (default {default})")


def add_pes(parser, default=64, what="processing elements of the design"):
    parser.add_argument("--pes", type=positive_int, default=default, metavar="P",
                        help=f"{what} (default {default})")


def add_membrane_bits(parser):
    parser.add_argument("--membrane-bits", type=positive_int, metavar="B",
                        help="membrane memory width of the design (default: the board's, 16 "
                             "bits): narrower saves LUTs and BRAM (README, PYNQ-Z2 resources) and "
                             "runs only networks whose membranes are at most B bits wide")


def add_simulator(parser, default):
    from spikeforge.sim.cosim import RTL_SIMULATORS

    parser.add_argument("--simulator", choices=RTL_SIMULATORS, default=default,
                        help="the Amaranth simulator (also checks the first layer's currents; "
                             "slow at 64 PEs) or the generated Verilog under cocotb with "
                             f"Verilator or Icarus (default {default})")


def add_averaged_design(parser):
    """BUNDLE, --dataset, --images, --pes, --data-dir, --inputs and --json of ``energy`` and
    ``bench pim``: numbers averaged over the first test images on a design of P PEs."""
    add_bundle(parser)
    add_dataset(parser)
    add_images(parser, 20, "average over the first N test images")
    add_pes(parser)
    add_data_dir(parser)
    add_inputs(parser)
    add_json(parser)


# --------------------------------------------------------------------- checks before work

def load_bundle(argument):
    """``(network, path)`` of BUNDLE, or of the shipped digits model for ``None``."""
    if argument is None:
        path = default_bundle_path()
        if not path.is_file():
            raise CLIError(f"the default bundle {path} is not installed; pass a BUNDLE path")
        return read_bundle(path), path
    return read_bundle(argument), Path(argument)


def data_dir(argument):
    """``--data-dir`` checked, or the default folder (``None`` when there is none)."""
    if argument is None:
        return default_data_dir()
    if argument.is_file():
        raise CLIError(f"the data folder {argument} is a file, not a folder")
    if not argument.is_dir():
        raise CLIError(f"the data folder {argument} does not exist")
    return argument


def training_data_dir(argument):
    """The dataset folder a training run reads (``--data-dir`` or the default), or a
    DatasetError that says where it looked."""
    folder = data_dir(argument)
    if folder is None:
        raise DatasetError("no dataset folder was found (looked for ../shared/datasets next to "
                           "the current directory and the repository); pass --data-dir")
    return folder


def check_writable(path, what, *, file=False):
    """Refuse an output ``path`` (``what`` names it; a file to write with ``file``, else a
    folder) that cannot be written, before any work: the nearest existing folder at or above
    it (above it, for a file) must take a new file (a read-only or unwritable location fails
    here, not after minutes of work)."""
    folder = Path(path).absolute()
    if file:
        folder = folder.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise CLIError(f"cannot write {what} {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".spikeforge-probe-"):
            pass
    except OSError as error:
        raise CLIError(f"cannot write {what} {path}: the folder {folder} is not writable "
                       f"({error.strerror})") from None


def check_bundle_out(path):
    """Refuse a training run's ``--out`` bundle path before any training: its folder must
    exist and take a new file."""
    if not path.parent.is_dir():
        raise CLIError(f"the folder {path.parent} for the bundle does not exist")
    check_writable(path, "the bundle", file=True)


def check_output_folder(path):
    """Refuse an ``--out DIR`` that is a file or cannot be created and written."""
    if path.exists() and not path.is_dir():
        raise CLIError(f"the output {path} exists and is not a folder")
    check_writable(path, "the output folder")


def with_pes(config, pes):
    """``config`` with ``pes`` PEs (unchanged for ``None``); a PE count no design can have
    (``AcceleratorConfig``'s checks name the limit) is a usage error."""
    return _with_option(config, "--pes", pes, lambda: replace(config, pes=pes))


def with_membrane_bits(config, membrane_bits):
    """``config`` with ``membrane_bits``-wide membrane memories (unchanged for ``None``;
    narrower ones bring the current shifter, ``rtl.sizing.with_membrane_width``); a width
    outside the contract's range is a usage error."""
    from spikeforge.rtl.sizing import with_membrane_width

    return _with_option(config, "--membrane-bits", membrane_bits,
                        lambda: with_membrane_width(config, membrane_bits))


def _with_option(config, option, value, change):
    """``change()`` (the config with ``option``'s ``value``), or ``config`` for ``None``."""
    if value is None:
        return config
    try:
        return change()
    except (TypeError, ValueError) as error:
        raise CLIError(f"{option} {value} makes no valid design: {one_line(error)}") from None


def check_membrane_bits(membrane_bits, network):
    """Refuse ``--membrane-bits`` outside the contract's range or narrower than ``network``'s
    membranes, before any work."""
    from spikeforge.rtl.sizing import DEFAULT_BOARD, check_membrane_width, for_board

    with_membrane_bits(for_board(DEFAULT_BOARD).config, membrane_bits)
    try:
        check_membrane_width(network, membrane_bits)
    except ValueError as error:
        raise CLIError(f"--membrane-bits {membrane_bits}: {error}") from None


def check_pes(pes):
    """Refuse ``--pes`` beyond what the board design can have, before any work."""
    from spikeforge.rtl.sizing import DEFAULT_BOARD, for_board

    with_pes(for_board(DEFAULT_BOARD).config, pes)


def dataset_name(args, network, *, datasets=DATASETS):
    """``--dataset``, or the dataset the bundle names; refused when it is none of
    ``datasets``."""
    dataset = args.dataset or network.dataset.get("name")
    if dataset not in datasets:
        raise CLIError(f"the bundle {network.name!r} names no known dataset; pass --dataset "
                       f"({', '.join(datasets)}) or --inputs")
    return dataset


def samples_for(args, network, *, datasets=DATASETS):
    """The samples a command runs: ``--inputs`` (``tools/inputs.py``, checked before any
    work) or the test split of ``--dataset`` (default: the dataset the bundle names)."""
    from .inputs import load_inputs

    if getattr(args, "inputs", None) is not None:
        if args.dataset is not None:
            raise CLIError(f"--inputs {args.inputs} replaces the test set; drop --dataset "
                           f"{args.dataset}")
        return load_inputs(args.inputs, network)
    return load_test_set(dataset_name(args, network, datasets=datasets), network,
                         data_dir(args.data_dir))


def first_test_images(args):
    """``(network, path, dataset, raw)``: the bundle and its first ``--images`` samples."""
    check_pes(args.pes)
    network, path = load_bundle(args.bundle)
    test = samples_for(args, network)
    return network, path, test.name, test.x[:min(args.images, test.x.shape[0])]


# --------------------------------------------------------------------- output

def printed(args, result, lines, status=0):
    """The :class:`Output` of a command: ``result`` as JSON with ``--json``, else the text
    ``lines(result)`` returns."""
    text = json.dumps(result, indent=2) if args.json else "\n".join(lines(result))
    return Output(text, status)


def one_line(error):
    """An exception's message on one line (its type's name when it has none)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def log(line):
    """A progress line on stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
