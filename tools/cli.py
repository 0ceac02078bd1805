"""The ``spikeforge`` command line (entry point ``spikeforge = spikeforge.tools.cli:main``).

Sub-commands: ``bundle info``, ``golden``, ``bench golden`` and ``train``; ``spikeforge --help``
lists them with a typical session. ``train`` imports PyTorch only when it runs, so the other
commands work without it. Every problem with the user's input (a missing, truncated or
invalid bundle or dataset file, a bad option) ends the program with one line
``spikeforge: error: <sentence>`` on stderr and exit status 2; output is written only once
it is complete, so a failing run never leaves half a table or half a JSON object.
"""

import argparse
import json
import sys
from pathlib import Path

from spikeforge.golden import BundleError, read_bundle

from .datasets import DatasetError, default_data_dir
from .evaluate import DATASETS, ShapeMismatch, default_bundle_path, evaluate, load_test_set

__all__ = ["main", "build_parser", "CLIError"]

EXIT_USAGE = 2

_EPILOG = """\
typical session:
  spikeforge bundle info                      # layers and widths of the shipped digits model
  spikeforge golden --dataset digits          # its accuracy and op counts (golden model)
  spikeforge bundle info my_net.sfb --json    # any bundle, machine-readable
  spikeforge golden my_net.sfb --dataset mnist --limit 1000 --json > golden.json
  spikeforge bench golden                     # golden model vs snnTorch, images per second
  spikeforge train mnist-vgg --out vgg.sfb    # train a preset and write its bundle
  spikeforge simulate --dataset digits --images 20   # RTL vs golden, cycle by cycle

BUNDLE defaults to the model shipped in the package (spikeforge/models/digits_snn.sfb).
Datasets are read from --data-dir, by default ../shared/datasets next to the current
directory or next to the repository. Errors print one line and exit with status 2;
simulate exits with status 1 when the RTL disagrees with the golden model.
"""


class CLIError(Exception):
    """A usage problem; the message is one sentence."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line instead of usage text plus a message."""

    def error(self, message):
        raise CLIError(message)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _weight_bits(text):
    value = _positive_int(text)
    if not 2 <= value <= 8:
        raise argparse.ArgumentTypeError(f"{value} is outside the supported weight bits 2..8")
    return value


#: ``spikeforge train`` presets (kept here so that --help needs no torch).
_TRAIN_PRESETS = ("digits-conv", "mnist-vgg", "mnist-resnet")


def _bundle_argument(parser):
    parser.add_argument("bundle", nargs="?", metavar="BUNDLE",
                        help="model bundle (.sfb); default: the shipped digits model")


def build_parser():
    """The argparse parser of the whole program."""
    parser = _Parser(prog="spikeforge", epilog=_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Integer SNN tools: inspect model bundles, run the bit-exact "
                                 "golden model on a dataset, benchmark it.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    bundle = commands.add_parser("bundle", help="inspect a model bundle (bundle info BUNDLE)",
                                 description="Inspect model bundles.")
    bundle_commands = bundle.add_subparsers(dest="bundle_command", metavar="COMMAND",
                                            required=True)
    info = bundle_commands.add_parser(
        "info", help="header and layer table of a bundle",
        description="Print a bundle's header (name, format, hash, timesteps, widths, dataset, "
                    "metadata) and a table of its layers.")
    _bundle_argument(info)
    info.add_argument("--json", action="store_true", help="print one JSON object instead")
    info.set_defaults(handler=_bundle_info)

    golden = commands.add_parser(
        "golden", help="accuracy and op counts of the golden model on a test split",
        description="Run the bit-exact golden model on a dataset's test split and print the "
                    "accuracy, first-layer MACs, synaptic ops and spikes (total, per layer, "
                    "per image). digits uses the split recorded in the bundle; mnist the "
                    "official t10k files.")
    _bundle_argument(golden)
    golden.add_argument("--dataset", choices=DATASETS,
                        help="test set; default: the dataset named in the bundle")
    golden.add_argument("--limit", type=_positive_int, metavar="N",
                        help="use only the first N test images (all when N exceeds them)")
    golden.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                        help="images per golden-model call (default 256)")
    golden.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder holding mnist/ and hsi/ (default ../shared/datasets)")
    golden.add_argument("--json", action="store_true",
                        help="print one JSON object (accuracy is a fraction 0..1)")
    golden.set_defaults(handler=_golden)

    bench = commands.add_parser("bench", help="speed benchmarks (bench golden)",
                                description="Speed benchmarks.")
    bench_commands = bench.add_subparsers(dest="bench_command", metavar="COMMAND", required=True)
    versus = bench_commands.add_parser(
        "golden", help="golden model vs snnTorch on a conv SNN, images/s",
        description="Time the golden model and snnTorch on the same integer conv SNN "
                    "(1x28x28 -> conv16 -> pool -> conv32 -> pool -> fc10, IF neurons) and "
                    "check that both predict the same. Needs `pip install spikeforge[bench]`.")
    versus.add_argument("--batch", type=_positive_int, default=256, help="images (default 256)")
    versus.add_argument("--timesteps", type=_positive_int, default=8, help="T (default 8)")
    versus.add_argument("--repeats", type=_positive_int, default=5,
                        help="timed runs per engine, interleaved; the median counts (default 5)")
    versus.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder holding mnist/ (random images when not found)")
    versus.add_argument("--json", action="store_true", help="print one JSON object")
    versus.set_defaults(handler=_bench)

    train = commands.add_parser(
        "train", help="train a preset ANN, convert it to an integer SNN, write the bundle",
        description="Train a preset network as a float ANN, retrain it with quantized ReLUs and "
                    "quantized weights, convert it to an integer IF-neuron SNN and write the "
                    "bundle, with the float ANN, quantized ANN and SNN (golden model) test "
                    "accuracies in its metadata. Progress goes to stderr. Presets: "
                    "digits-conv, mnist-vgg, mnist-resnet. Needs `pip install "
                    "spikeforge[train]`.")
    train.add_argument("preset", choices=list(_TRAIN_PRESETS), metavar="PRESET",
                       help="one of " + ", ".join(_TRAIN_PRESETS))
    train.add_argument("--out", type=Path, required=True, metavar="BUNDLE",
                       help="bundle file to write (.sfb)")
    train.add_argument("--epochs", type=_positive_int, metavar="N",
                       help="epochs of each phase (float ANN, quantized ANN); default: preset's")
    train.add_argument("--timesteps", type=_positive_int, metavar="T",
                       help="SNN timesteps, also the quantized ReLU's levels (default 8)")
    train.add_argument("--weight-bits", type=_weight_bits, metavar="B",
                       help="weight bits 2..8 (default: 8 for digits-conv, 4 for MNIST)")
    train.add_argument("--seed", type=int, default=0, metavar="S",
                       help="seed of initialisation, shuffling and augmentation (default 0)")
    train.add_argument("--data-dir", type=Path, metavar="DIR",
                       help="folder holding mnist/ (default ../shared/datasets)")
    # Smoke tests: train (and, for MNIST, validate and test) on only the first N images.
    train.add_argument("--train-limit", type=_positive_int, help=argparse.SUPPRESS)
    train.set_defaults(handler=_train)

    simulate = commands.add_parser(
        "simulate", help="RTL vs golden model on the first test images (Amaranth simulator)",
        description="Run the accelerator RTL in the Amaranth simulator on the first N test "
                    "images, checking every membrane write and spike against the golden "
                    "model as it happens; print per image pass/fail, the hardware cycle "
                    "counter and the cycle model's prediction. Exit status 1 on any mismatch "
                    "(or cycle-model disagreement).")
    _bundle_argument(simulate)
    simulate.add_argument("--dataset", choices=DATASETS,
                          help="test set; default: the dataset named in the bundle")
    simulate.add_argument("--images", type=_positive_int, default=1, metavar="N",
                          help="simulate the first N test images (default 1)")
    simulate.add_argument("--pes", type=_positive_int, default=64, metavar="P",
                          help="processing elements of the design (default 64)")
    simulate.add_argument("--vcd", type=Path, metavar="DIR",
                          help="write a waveform DIR/imageN.vcd for each failing image")
    simulate.add_argument("--data-dir", type=Path, metavar="DIR",
                          help="folder holding mnist/ (default ../shared/datasets)")
    simulate.add_argument("--json", action="store_true", help="print one JSON object")
    simulate.set_defaults(handler=_simulate)
    return parser


# --------------------------------------------------------------------------- handlers

def _load_bundle(argument):
    if argument is None:
        path = default_bundle_path()
        if not path.is_file():
            raise CLIError(f"the default bundle {path} is not installed; pass a BUNDLE path")
        return read_bundle(path), path
    return read_bundle(argument), Path(argument)


def _emit(text):
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _bundle_info(args):
    from .report import bundle_info, bundle_info_lines, manifest_version

    network, path = _load_bundle(args.bundle)
    version = manifest_version(path)
    if args.json:
        return json.dumps(bundle_info(network, path, version), indent=2)
    return "\n".join(bundle_info_lines(network, path, version))


def _data_dir(argument):
    if argument is None:
        return default_data_dir()
    if not argument.is_dir():
        raise CLIError(f"the data folder {argument} does not exist")
    return argument


class _Progress:
    """Carriage-return progress on stderr, only for interactive terminals."""

    def __init__(self, enabled):
        self.enabled = enabled and sys.stderr.isatty()
        self.shown = False

    def __call__(self, done, total):
        if self.enabled:
            sys.stderr.write(f"\rgolden: {done}/{total} images")
            sys.stderr.flush()
            self.shown = True

    def close(self):
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _golden(args):
    from .report import golden_lines, golden_summary

    network, _ = _load_bundle(args.bundle)
    dataset = args.dataset or network.dataset.get("name")
    if dataset not in DATASETS:
        raise CLIError(f"the bundle {network.name!r} names no known dataset; pass --dataset "
                       f"({', '.join(DATASETS)})")
    test = load_test_set(dataset, network, _data_dir(args.data_dir))
    count = test.x.shape[0] if args.limit is None else min(args.limit, test.x.shape[0])
    progress = _Progress(enabled=not args.json)
    try:
        evaluation = evaluate(network, test.x[:count], test.y[:count],
                              batch_size=args.batch_size, progress=progress)
    finally:
        progress.close()
    summary = golden_summary(network, evaluation, dataset, test.description)
    if args.json:
        return json.dumps(summary, indent=2)
    return "\n".join(golden_lines(summary))


def _bench(args):
    from .bench import bench_lines, run_benchmark

    data_dir = None if args.data_dir is None else _data_dir(args.data_dir)
    result = run_benchmark(batch=args.batch, timesteps=args.timesteps, repeats=args.repeats,
                           data_dir=data_dir)
    if args.json:
        return json.dumps(result, indent=2)
    return "\n".join(bench_lines(result))


def _train(args):
    try:
        import torch
    except ImportError:
        raise CLIError("training needs PyTorch, which is not installed; install it with "
                       "pip install 'spikeforge[train]'") from None
    from spikeforge.train.presets import train_preset

    if not args.out.parent.is_dir():
        raise CLIError(f"the folder {args.out.parent} for the bundle does not exist")
    data_dir = None
    if args.preset != "digits-conv":
        data_dir = _data_dir(args.data_dir)
        if data_dir is None:
            raise DatasetError("no dataset folder was found (looked for ../shared/datasets "
                               "next to the current directory and the repository); pass "
                               "--data-dir")

    def log(line):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    result = train_preset(args.preset, args.out, epochs=args.epochs, timesteps=args.timesteps,
                          weight_bits=args.weight_bits, seed=args.seed, data_dir=data_dir,
                          train_limit=args.train_limit, log=log)
    return (f"wrote {args.out}: {result.preset} (torch {torch.__version__}), test accuracy on "
            f"{result.test_images} images: float ANN {100 * result.float_accuracy:.2f} %, "
            f"quantized ANN {100 * result.qrelu_accuracy:.2f} %, SNN (golden model) "
            f"{100 * result.snn_accuracy:.2f} %; {result.seconds:.0f} s")


def _simulate(args):
    from spikeforge.rtl.program import ProgramError

    from .simulate import simulate, simulate_lines

    network, path = _load_bundle(args.bundle)
    dataset = args.dataset or network.dataset.get("name")
    if dataset not in DATASETS:
        raise CLIError(f"the bundle {network.name!r} names no known dataset; pass --dataset "
                       f"({', '.join(DATASETS)})")
    if args.vcd is not None and not args.vcd.is_dir():
        raise CLIError(f"the waveform folder {args.vcd} does not exist")
    test = load_test_set(dataset, network, _data_dir(args.data_dir))
    count = min(args.images, test.x.shape[0])
    try:
        summary = simulate(network, test.x[:count], test.y[:count], pes=args.pes,
                           vcd_dir=args.vcd, bundle=path, dataset=dataset)
    except ProgramError as error:
        raise CLIError(str(error)) from None
    text = json.dumps(summary, indent=2) if args.json else "\n".join(simulate_lines(summary))
    return text, 1 if summary["failed"] else 0


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv=None):
    """Run the program on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from .bench import BenchUnavailable

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        text = args.handler(args)
    except (CLIError, BundleError, DatasetError, ShapeMismatch, BenchUnavailable) as error:
        sys.stderr.write(f"spikeforge: error: {_one_line(error)}\n")
        return EXIT_USAGE
    except OSError as error:  # unreadable paths and the like, named by the OS message
        sys.stderr.write(f"spikeforge: error: {_one_line(error)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("spikeforge: interrupted\n")
        return 130
    status = 0
    if isinstance(text, tuple):  # (output, exit status): simulate exits 1 on a mismatch
        text, status = text
    _emit(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
