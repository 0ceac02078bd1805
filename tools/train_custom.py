"""``spikeforge train custom``: a user's own PyTorch module through ``from_torch``.

``--model FILE.py:FUNCTION`` names a Python file and a function in it that takes no arguments and
returns the ``torch.nn.Module``; ``--dataset`` picks the data:

``mnist``
    MNIST's training images minus the presets' 5000-image validation split (which chooses the
    epoch and the calibration variant), raw range 0..255; the SNN is then measured on t10k;
``digits``
    scikit-learn's 8x8 digits (the presets' split), raw range 0..16, batches of 32; 10 % of
    the training images validate; the SNN is measured on the test split;
``indian-pines``
    11x11 patches of the first 16 principal components (the hyperspectral presets' random
    30 % split, raw range -4..4), shape ``(1, 16, 11, 11)`` for a ``Conv3d`` network; 10 % of
    the training patches validate; the SNN is measured on the other pixels.

``spikeforge train`` (``tools/train_presets.py``) adds these options (:func:`add_arguments`)
and hands ``custom`` to :func:`run`.
"""

import importlib.util
import sys
from pathlib import Path

from .options import CLIError, check_bundle_out, training_data_dir

__all__ = ["DATASETS", "add_arguments", "run"]

DATASETS = ("mnist", "digits", "indian-pines")


def add_arguments(parser):
    """The ``custom`` options of ``spikeforge train``."""
    group = parser.add_argument_group("custom (a network of your own)")
    group.add_argument("--model", metavar="FILE.py:FUNCTION",
                       help="custom: a Python file and a function in it that returns the "
                            "torch.nn.Module to train")
    group.add_argument("--dataset", choices=DATASETS,
                       help="custom: the dataset to train on (" + ", ".join(DATASETS) + ")")


def _load_module(text, seed):
    path, sep, function = text.rpartition(":")
    if not sep or not path or not function:
        raise CLIError(f"--model {text!r} is not FILE.py:FUNCTION")
    file = Path(path)
    if not file.is_file():
        raise CLIError(f"--model: the file {file} does not exist")
    spec = importlib.util.spec_from_file_location(f"spikeforge_custom_{file.stem}", file)
    if spec is None:
        raise CLIError(f"--model: {file} is not a Python file")
    code = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = code   # torch.fx and pickling look modules up by name
    try:
        spec.loader.exec_module(code)
    except Exception as exc:
        raise CLIError(f"--model: importing {file} failed: {type(exc).__name__}: {exc}") from None
    builder = getattr(code, function, None)
    if not callable(builder):
        raise CLIError(f"--model: {file} has no function {function!r}")
    import torch

    torch.manual_seed(seed)   # the module's initialisation, before FUNCTION() builds it
    try:
        module = builder()
    except Exception as exc:
        raise CLIError(f"--model: {function}() failed: {type(exc).__name__}: {exc}") from None

    if not isinstance(module, torch.nn.Module):
        raise CLIError(f"--model: {function}() returned {type(module).__name__}, not a "
                    f"torch.nn.Module")
    return module


def _data(name, data_dir, limit):
    """``(x_train, y_train, x_val, y_val, x_test, y_test, raw_range)``; ``x_val`` may be None."""
    import numpy as np

    from spikeforge.data import datasets

    if name == "digits":
        split = datasets.digits_split(test_fraction=datasets.DIGITS_SPLIT["test_fraction"],
                                        seed=datasets.DIGITS_SPLIT["seed"])
        return (split.x_train[:limit], split.y_train[:limit], None, None, split.x_test,
                split.y_test, (0.0, 16.0))
    if name == "mnist":
        from spikeforge.train.mnist import VALIDATION

        split = datasets.mnist_split(data_dir)
        order = np.random.default_rng(VALIDATION["seed"]).permutation(len(split.y_train))
        val, train = order[:VALIDATION["size"]][:limit], order[VALIDATION["size"]:][:limit]
        return (split.x_train[train], split.y_train[train], split.x_train[val],
                split.y_train[val], split.x_test[:limit], split.y_test[:limit], (0.0, 255.0))
    from spikeforge.data import hsi
    from spikeforge.train.hsi import HSIConfig

    config = HSIConfig()
    scene = hsi.load_scene("indian-pines", data_dir)
    data = hsi.build(scene, components=config.components, patch=config.patch,
                     split=config.split, fraction=config.train_fraction, seed=0)
    return (data.x_train[:limit], data.y_train[:limit], None, None, data.x_test[:limit],
            data.y_test[:limit], (-config.input_range, config.input_range))


def run(args, *, log):
    """Train ``--model`` on ``--dataset``; return the summary line.

    Usage problems raise :class:`~spikeforge.tools.options.CLIError` before any training,
    with the presets' own output and dataset-folder checks; ``log`` receives the progress
    lines.
    """
    if args.model is None or args.dataset is None:
        raise CLIError("train custom needs --model FILE.py:FUNCTION and --dataset "
                       + "|".join(DATASETS))
    if args.prune is not None:
        from spikeforge.train.presets import PRUNABLE_PRESETS

        raise CLIError(f"--prune applies to the presets {' and '.join(PRUNABLE_PRESETS)}, not "
                       f"to custom")
    if args.split is not None or args.train_fraction is not None:
        raise CLIError("--split and --train-fraction apply to the hyperspectral presets, not to "
                       "custom")
    check_bundle_out(args.out)
    module = _load_module(args.model, args.seed)
    folder = None if args.dataset == "digits" else training_data_dir(args.data_dir)
    x_train, y_train, x_val, y_val, x_test, y_test, raw_range = _data(
        args.dataset, folder, args.train_limit)
    import torch

    from spikeforge.train import UnmappableModule, from_torch
    from spikeforge.train.fit import snn_accuracy

    # The digits are 1347 images: the digits preset's batch of 32 (else 128, the MNIST one).
    options = {"batch_size": 32 if args.dataset == "digits" else 128}
    options.update({key: value for key, value in (("epochs", args.epochs),
                                                  ("timesteps", args.timesteps),
                                                  ("weight_bits", args.weight_bits))
                    if value is not None})
    try:
        result = from_torch(module, x_train, y_train, out=args.out, x_val=x_val, y_val=y_val,
                            raw_range=raw_range, seed=args.seed, log=log, **options)
    except UnmappableModule as exc:
        raise CLIError(str(exc)) from None
    test = snn_accuracy(result.network, x_test, y_test)
    return (f"wrote {args.out}: {result.network.name} from {args.model} on {args.dataset} "
            f"(torch {torch.__version__}); on {result.validation_images} validation samples: "
            f"float ANN {100 * result.float_accuracy:.2f} %, quantized ANN "
            f"{100 * result.qrelu_accuracy:.2f} %, SNN (golden model) "
            f"{100 * result.snn_accuracy:.2f} % (ANN -> SNN loss "
            f"{result.conversion_loss:+.2f} points); SNN on {len(y_test)} test samples "
            f"{100 * test:.2f} %; {result.fits} on the default accelerator; "
            f"{result.seconds:.0f} s")
