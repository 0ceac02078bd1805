"""``spikeforge train PRESET|custom``: train a network and write its bundle.

The presets are :data:`spikeforge.train.presets.PRESETS` (importing it needs no torch, so
``--help`` works without PyTorch); ``custom`` is :mod:`spikeforge.tools.train_custom`.
"""

import argparse
from pathlib import Path

from spikeforge.golden.manifest import WEIGHT_BITS

from .options import (
    CLIError, add_data_dir, check_bundle_out, fraction, in_range, positive_int,
    training_data_dir, weight_bits,
)
from .progress import LineBar, wanted

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "PRUNE_MODES", "PRUNE_VARIANTS"]

HELP = "train a preset ANN, convert it to an integer SNN, write the bundle"
DESCRIPTION = ("Train a preset network as a float ANN, retrain it with quantized ReLUs and "
               "quantized weights, convert it to an integer IF-neuron SNN and write the bundle, "
               "with the float ANN, quantized ANN and SNN (golden model) test accuracies in its "
               "metadata. Progress goes to stderr. Presets: digits-conv, mnist-vgg, "
               "mnist-resnet; indian-pines-3d and indian-pines-hybrid train the SNN directly "
               "(surrogate gradients, learnable leak and threshold) after the quantized ANN; "
               "--membrane-bits B trains mnist-vgg and the hyperspectral presets for a narrow "
               "B-bit membrane (mnist-vgg then directly as an SNN). "
               "Needs `pip install spikeforge[train]`.")

#: ``train.prune``'s MODES and VARIANTS, written out so that the command line does not import
#: torch (tests/test_train_prune.py checks that they agree).
PRUNE_MODES = ("global", "structured", "membrane")
PRUNE_VARIANTS = ("finetune", "rewind")
#: --prune-* option (argparse dest) -> key of ``train_preset``'s ``prune`` dict.
_PRUNE_OPTIONS = {"prune_rounds": "rounds", "prune_mode": "mode", "prune_variant": "variant",
                  "prune_epochs": "epochs_per_round", "prune_final_epochs": "final_epochs"}


def _sparsity(text):
    return fraction(text, low_inclusive=True, meaning="a sparsity fraction in 0 <= S < 1 (0.8 "
                                                      "prunes 80 % of the weights)")


def add_arguments(parser):
    from spikeforge.train.presets import (
        DEFAULT_THREADS, DIRECT_MEMBRANE_BITS, NARROW_MEMBRANE_PRESETS, PRESETS, SURROGATES,
    )

    from .train_custom import add_arguments as add_custom_arguments

    parser.add_argument("preset", choices=[*PRESETS, "custom"], metavar="PRESET",
                        help="one of " + ", ".join(PRESETS) + ", or custom: your own PyTorch "
                             "module (--model, --dataset; docs/api.md)")
    parser.add_argument("--out", type=Path, required=True, metavar="BUNDLE",
                        help="bundle file to write (.sfb)")
    parser.add_argument("--epochs", type=positive_int, metavar="N",
                        help="epochs of each phase (float ANN, quantized ANN); default: "
                             "preset's")
    parser.add_argument("--timesteps", type=positive_int, metavar="T",
                        help="SNN timesteps, also the quantized ReLU's levels (default 8)")
    parser.add_argument("--weight-bits", type=weight_bits, metavar="B",
                        help=f"weight bits {WEIGHT_BITS[0]}..{WEIGHT_BITS[1]} (default: 8 for "
                             f"digits-conv, 4 for MNIST, 6 for Indian Pines); 2 is ternary: "
                             f"-1, 0, 1 times a per-layer scale, +-1 for the weights above "
                             f"TWN's threshold 0.7 mean|W|")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of initialisation, shuffling and augmentation (default 0)")
    parser.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS, metavar="N",
                        help=f"PyTorch threads, recorded in the bundle; the same --seed and "
                             f"--threads give the same arrays under any load (default "
                             f"{DEFAULT_THREADS})")
    add_data_dir(parser)
    parser.add_argument("--prune", type=_sparsity, metavar="S",
                        help="quantization-aware pruning after QAT to sparsity S (fraction of "
                             "all weights, 0 <= S < 1), per-round report on stderr and in the "
                             "bundle's metadata (mnist-vgg, mnist-resnet)")
    parser.add_argument("--prune-rounds", type=positive_int, metavar="N",
                        help="pruning rounds, each removing an equal share of the weights "
                             "between the quantizer's own zeros and S (default 4)")
    parser.add_argument("--prune-mode", choices=PRUNE_MODES,
                        help="global magnitude pruning of weights (default), whole output "
                             "channels ranked by their weights (structured) or by how often "
                             "their membrane reaches the threshold on training images "
                             "(membrane, SpQuant-SNN's membrane prior)")
    parser.add_argument("--prune-variant", choices=PRUNE_VARIANTS,
                        help="retrain from the current weights (default) or rewind the "
                             "survivors to the start of QAT (lottery ticket)")
    parser.add_argument("--prune-epochs", type=positive_int, metavar="N",
                        help="epochs of each pruning round but the last (default 2)")
    parser.add_argument("--prune-final-epochs", type=positive_int, metavar="N",
                        help="epochs of the last pruning round (default 4)")
    parser.add_argument("--split", choices=("random", "disjoint"),
                        help="hyperspectral presets: stratified random pixels (default) or a "
                             "spatially disjoint split (no training patch covers a test "
                             "pixel)")
    parser.add_argument("--train-fraction", type=fraction, metavar="F",
                        help="hyperspectral presets: fraction of each class's labelled pixels "
                             "used for training (default 0.3)")
    low, high = DIRECT_MEMBRANE_BITS
    presets = ", ".join(NARROW_MEMBRANE_PRESETS)
    parser.add_argument("--membrane-bits", type=in_range(DIRECT_MEMBRANE_BITS, "membrane bits"),
                        metavar="B",
                        help=f"{presets}: train the SNN for a B-bit membrane ({low}..{high}, "
                             f"default 16; SpQuant-SNN's narrow membranes): the SNN phase "
                             f"saturates it as the accelerator does, each layer gets a "
                             f"current shift so that its weights keep their scale, and "
                             f"mnist-vgg is then trained directly as an SNN instead of "
                             f"converted; the bundle runs on designs with membranes of at "
                             f"least B bits and the current shifter (simulate --membrane-bits "
                             f"B)")
    parser.add_argument("--surrogate", choices=SURROGATES,
                        help="the gradient of the saturating membrane in SNN training: zero "
                             "once saturated (linear) or SpQuant-SNN's stacked sigmoids, one "
                             "per membrane level (default: stacked below 16 bits, else "
                             "linear)")
    # Smoke tests: train (and, for MNIST, validate and test) on only the first N images.
    parser.add_argument("--train-limit", type=positive_int, help=argparse.SUPPRESS)
    add_custom_arguments(parser)


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


def run(args):
    try:
        import torch
    except ImportError:
        raise CLIError("training needs PyTorch, which is not installed; install it with "
                       "pip install 'spikeforge[train]'") from None
    from spikeforge.train.presets import train_preset

    from .options import Output

    if args.preset == "custom":
        from . import train_custom

        with LineBar("train", enabled=wanted(), unit="epoch") as log:
            return Output(train_custom.run(args, log=log))
    if args.model is not None or args.dataset is not None:
        raise CLIError(f"--model and --dataset apply to train custom, not to {args.preset}")
    prune = _prune_options(args)
    check_bundle_out(args.out)
    data_dir = None if args.preset == "digits-conv" else training_data_dir(args.data_dir)

    from spikeforge.train.presets import DIRECT_PRESETS, NARROW_MEMBRANE_PRESETS

    hsi = {k: v for k, v in (("split", args.split), ("train_fraction", args.train_fraction))
           if v is not None}
    if hsi and args.preset not in DIRECT_PRESETS:
        raise CLIError(f"--split and --train-fraction apply to the hyperspectral presets, not "
                       f"to {args.preset}")
    for option, value in (("--membrane-bits", args.membrane_bits),
                          ("--surrogate", args.surrogate)):
        if value is not None and args.preset not in NARROW_MEMBRANE_PRESETS:
            raise CLIError(f"{option} applies to {', '.join(NARROW_MEMBRANE_PRESETS)}, not to "
                           f"{args.preset}")
    narrow = args.membrane_bits is not None and args.membrane_bits < 16
    if args.surrogate is not None and args.preset not in DIRECT_PRESETS and not narrow:
        raise CLIError(f"--surrogate needs --membrane-bits below 16 for {args.preset}, which "
                       f"is otherwise converted, not trained as an SNN")
    if narrow and prune and prune["sparsity"] > 0:
        raise CLIError("--prune with --membrane-bits below 16 is not implemented; train the "
                       "narrow membrane without pruning")
    # The log lines on stderr, with a bar over each phase's epochs on a terminal.
    with LineBar("train", enabled=wanted(), unit="epoch") as log:
        result = train_preset(args.preset, args.out, epochs=args.epochs,
                              timesteps=args.timesteps, weight_bits=args.weight_bits,
                              seed=args.seed, data_dir=data_dir, train_limit=args.train_limit,
                              log=log, prune=prune, hsi=hsi or None, threads=args.threads,
                              membrane_bits=args.membrane_bits, surrogate=args.surrogate)
    pruned = ""
    if "pruning" in result.network.metadata:
        rounds = result.network.metadata["pruning"]["rounds"]
        pruned = (f", {100 * rounds[-1]['sparsity']:.1f} % of the weights zero, BOPs "
                  f"{rounds[-1]['bops'] / rounds[0]['bops']:.3f} of the unpruned network's")
    return Output(
        f"wrote {args.out}: {result.preset} (torch {torch.__version__}), test accuracy on "
        f"{result.test_images} images: float ANN {100 * result.float_accuracy:.2f} %, "
        f"quantized ANN {100 * result.qrelu_accuracy:.2f} %, SNN (golden model) "
        f"{100 * result.snn_accuracy:.2f} % (ANN -> SNN loss "
        f"{100 * (result.qrelu_accuracy - result.snn_accuracy):+.2f} points){pruned}; "
        f"{result.seconds:.0f} s")
