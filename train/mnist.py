"""The MNIST presets: VGG-11- and ResNet-18-style SNNs by quantization-aware ANN-to-SNN conversion.

Recipe (the SIA paper's three steps, shared with the digits recipe through
:class:`~spikeforge.train.qnet.QuantNet`, :mod:`~spikeforge.train.quant` and
:mod:`~spikeforge.train.convert`, plus a calibration step):

1. Train the float ANN (ReLU, batch norm, random shifts of up to 2 pixels) on MNIST's training
   images minus a held-out validation split (5000 images drawn with a fixed seed). The ANN sees
   the 8-bit quantized pixels times the pixel step, i.e. what the direct-encoded SNN sees.
2. Fold the batch norms into the weights, calibrate every clip value ``lambda`` (a percentile
   of the float activations), then retrain with quantized ReLUs (``L = T`` levels, learnable
   ``lambda``) and ``weight_bits``-bit fake-quantized weights. The epoch with the best
   *validation* accuracy of the quantized ANN is kept; the test set is never used to choose.
3. Swap in IF neurons and export the integer network (weights, thresholds, residual scales
   exactly as trained).
4. Correct the integer biases layer by layer so that the SNN's spike counts match the
   quantized ANN's on 500 training images (:mod:`spikeforge.train.calibrate`), then measure
   float ANN, quantized ANN and SNN (golden model) accuracy on the official t10k test set; the
   SNN accuracy before this step is recorded too.

Architectures (every layer has at most 64 channels, so a 64-PE array needs no channel tiling):

``mnist-vgg``
    VGG-11's 8 conv layers in 5 stages (1, 1, 2, 2, 2 convs) with a max-pool after each
    stage, then VGG's three fully connected layers: conv16 - pool - conv32 - pool - conv64 x2
    - pool - conv64 x2 - pool - conv64 x2 - fc64 - fc64 - fc10. A 28x28 image shrinks
    28 -> 14 -> 7 -> 3 -> 1 (2x2 pools, stride 2; the last one reads the top-left 2x2 of the
    3x3 map), so stage 5 runs on 1x1 maps, where a 3x3 convolution with padding 1 only uses
    its centre tap: it is written as the equivalent 1x1 convolution, and the fifth pool (of a
    1x1 map) is the identity and is left out. The max-pools are the contract's OR max-pools,
    which over-count a little (:mod:`spikeforge.train.convert`). Measured alternatives (same
    recipe without step 4, seed 0, t10k): a 3x3 fourth pool (OR of 9 inputs, 0.9 spikes per
    output above the max on average) gave an SNN of 95.11 % against a 99.55 % quantized ANN;
    average pools everywhere (``vgg_specs("avgpool2d")``; exact in spike counts, but every
    avg-pool neuron is one more layer whose output spikes arrive unevenly) gave 71.61 %
    against 99.53 %.
``mnist-resnet``
    ResNet-18's stem (conv + 2x2 OR max-pool) and 4 stages x 2 basic blocks (conv-BN-ReLU-conv-BN,
    plus the shortcut, then ReLU), widths 16, 32, 64, 64, the first block of stages 2-4 with
    stride 2 and a 1x1 projection shortcut, the others with identity shortcuts; maps
    28 -> 14 -> 14 -> 7 -> 4 -> 2; then ResNet's global average pool (an avg-pool over the
    2x2 map) and the fc10 classifier. Each block's second conv outputs its ``"current"`` and
    the contract's ``add`` layer sums it with the shortcut (see :mod:`spikeforge.train.convert`
    for the integer scale).
"""

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from spikeforge import golden
from spikeforge.data.datasets import mnist_split

from .convert import network_parts
from .fit import accuracy, ann_inputs, best_state, snn_accuracy, train_epochs
from .qnet import QuantNet
from .robust import CALIBRATION_PASSES, convert_and_calibrate

__all__ = ["RECIPE", "MNIST_PRESETS", "INPUT_SPEC", "VALIDATION", "MnistConfig", "MnistRun",
           "input_spec", "split_indices", "vgg_specs", "resnet_specs", "train_mnist"]

RECIPE = "mnist-qat-qrelu-conversion-v1"
#: Direct (analog) encoding: 8-bit pixels, raw MNIST values 0..255.
INPUT_SPEC = {"shape": [1, 28, 28], "bits": 8, "raw_min": 0.0, "raw_max": 255.0}
#: The held-out validation split of MNIST's 60000 training images (recorded in the bundle).
VALIDATION = {"method": "numpy.random.default_rng(seed).permutation(60000)[:size]",
              "size": 5000, "seed": 0}


def input_spec():
    """:data:`INPUT_SPEC` as a :class:`spikeforge.golden.InputSpec`."""
    return golden.InputSpec(tuple(INPUT_SPEC["shape"]), INPUT_SPEC["bits"],
                            INPUT_SPEC["raw_min"], INPUT_SPEC["raw_max"])


def split_indices(count, *, train_limit=None, eval_limit=None):
    """``(train, validation)`` indices into MNIST's ``count`` training images: the
    :data:`VALIDATION` split, each part cut to its limit (smoke tests)."""
    order = np.random.default_rng(VALIDATION["seed"]).permutation(count)
    return order[VALIDATION["size"]:][:train_limit], order[:VALIDATION["size"]][:eval_limit]


def _conv(name, channels, kernel=3, stride=1, padding=1, **extra):
    return {"name": name, "type": "conv2d", "out_channels": channels, "kernel": kernel,
            "stride": stride, "padding": padding, "bn": True, **extra}


def vgg_specs(pool="maxpool2d"):
    """Layer specs of ``mnist-vgg`` (module docstring); ``pool`` is the stages' pooling type."""
    def pooling(name, kernel):
        return {"name": name, "type": pool, "kernel": kernel}

    return [_conv("conv1", 16), pooling("pool1", 2),
            _conv("conv2", 32), pooling("pool2", 2),
            _conv("conv3", 64), _conv("conv4", 64), pooling("pool3", 2),
            _conv("conv5", 64), _conv("conv6", 64), pooling("pool4", 2),
            _conv("conv7", 64, kernel=1, padding=0), _conv("conv8", 64, kernel=1, padding=0),
            {"name": "flatten", "type": "flatten"},
            {"name": "fc1", "type": "linear", "out_features": 64, "bn": True},
            {"name": "fc2", "type": "linear", "out_features": 64, "bn": True},
            {"name": "fc3", "type": "linear", "out_features": 10}]


def _block(name, source, in_channels, channels, stride):
    """One basic block: conv-BN-ReLU, conv-BN (current), shortcut, add (then ReLU)."""
    specs = [_conv(f"{name}_conv1", channels, stride=stride, inputs=[source]),
             _conv(f"{name}_conv2", channels, output="current")]
    shortcut = source
    if stride != 1 or in_channels != channels:
        shortcut = f"{name}_down"
        specs.append(_conv(shortcut, channels, kernel=1, stride=stride, padding=0,
                           inputs=[source], output="current"))
    specs.append({"name": f"{name}_add", "type": "add", "inputs": [f"{name}_conv2", shortcut]})
    return specs


def resnet_specs(widths=(16, 32, 64, 64), stem_pool="maxpool2d"):
    """Layer specs of ``mnist-resnet`` (module docstring)."""
    specs = [_conv("stem", widths[0]), {"name": "stem_pool", "type": stem_pool, "kernel": 2}]
    source, channels = "stem_pool", widths[0]
    for stage, width in enumerate(widths, start=1):
        for index in range(2):
            stride = 2 if stage > 1 and index == 0 else 1
            name = f"s{stage}b{index + 1}"
            specs += _block(name, source, channels, width, stride)
            source, channels = f"{name}_add", width
    specs += [{"name": "avgpool", "type": "avgpool2d", "kernel": 2},
              {"name": "flatten", "type": "flatten"},
              {"name": "fc", "type": "linear", "out_features": 10}]
    return specs


#: Preset name -> (bundle name, layer-spec builder).
MNIST_PRESETS = {"mnist-vgg": ("mnist_vgg", vgg_specs),
                 "mnist-resnet": ("mnist_resnet", resnet_specs)}


@dataclass
class MnistConfig:
    """Hyper-parameters of the MNIST recipe (all recorded in the bundle's metadata)."""

    float_epochs: int = 10
    qat_epochs: int = 10
    batch_size: int = 128
    float_lr: float = 2e-3
    qat_lr: float = 5e-4
    weight_decay: float = 1e-4
    max_shift: int = 2
    timesteps: int = 8
    levels: int | None = None  # quantized-ReLU levels; None: equal to timesteps
    weight_bits: int = 4
    bias_bits: int = 16
    membrane_bits: int = 16
    percentile: float = 99.9
    calibration_images: int = 2048
    snn_calibration_images: int = 500  # training images for the bias calibration; 0: none
    snn_calibration_passes: int = CALIBRATION_PASSES  # calibration passes (train.robust)
    seed: int = 0
    train_limit: int | None = None  # use only the first N training images (smoke tests)
    eval_limit: int | None = None   # evaluate on only the first N validation / test images


@dataclass
class MnistRun:
    """What :func:`train_mnist` returns."""

    net: QuantNet
    network: golden.Network
    float_accuracy: float
    qrelu_accuracy: float
    snn_accuracy: float
    training_seconds: float


def _public_specs(net):
    """The layer specs as given (without QuantNet's derived ``sources``/``out_shape``)."""
    return [{k: v for k, v in s.items() if k not in ("sources", "out_shape")} for s in net.specs]


def train_mnist(preset, out, config=None, *, data_dir, log=print, extra_metadata=None,
                refine=None):
    """Train ``preset`` (a key of :data:`MNIST_PRESETS`), write its bundle to ``out``.

    Parameters
    ----------
    preset : str
    out : path
    config : MnistConfig, optional
    data_dir : path
        Folder holding ``mnist/`` (:func:`spikeforge.data.datasets.mnist_split`).
    log : callable
        Receives progress lines.
    extra_metadata : dict, optional
        Merged into the bundle's metadata.
    refine : callable, optional
        ``refine(net, data)`` runs after quantization-aware training (best epoch restored)
        and before the test accuracies are measured and the network is exported; it may
        change ``net`` (quantization-aware pruning, :mod:`spikeforge.train.prune`). ``data``
        holds the ``x_/y_train``, ``x_/y_val``, ``x_/y_test`` tensors, ``train_kwargs`` (the
        keyword arguments of :func:`~spikeforge.train.fit.train_epochs` besides data, epochs,
        lr and label), ``lr`` (the QAT learning rate) and ``qat_start`` (the state dict at
        the start of QAT). The dict it returns is merged into the metadata.

    Returns
    -------
    MnistRun
    """
    if preset not in MNIST_PRESETS:
        raise ValueError(f"unknown MNIST preset {preset!r}; expected one of "
                         f"{', '.join(MNIST_PRESETS)}")
    config = config or MnistConfig()
    # Once the loss is small, softmax gradients underflow into subnormal floats, which the CPU
    # handles up to 100x slower (a whole epoch went from 26 s to over 8 minutes); flushing them
    # to zero changes nothing measurable and keeps every epoch's time flat.
    flushing = torch.set_flush_denormal(True)
    try:
        return _train_mnist(preset, out, config, data_dir=data_dir, log=log,
                            extra_metadata=extra_metadata, refine=refine)
    finally:
        if flushing:
            torch.set_flush_denormal(False)


def _train_mnist(preset, out, config, *, data_dir, log, extra_metadata, refine=None):
    levels = config.levels or config.timesteps
    bundle_name, builder = MNIST_PRESETS[preset]
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    spec = input_spec()
    split = mnist_split(data_dir)
    train_index, val_index = split_indices(len(split.y_train), train_limit=config.train_limit,
                                           eval_limit=config.eval_limit)
    x_train, _ = ann_inputs(split.x_train[train_index], spec)
    y_train = torch.as_tensor(split.y_train[train_index])
    x_val, _ = ann_inputs(split.x_train[val_index], spec)
    y_val = torch.as_tensor(split.y_train[val_index])
    raw_test, labels_test = split.x_test[:config.eval_limit], split.y_test[:config.eval_limit]
    x_test, _ = ann_inputs(raw_test, spec)
    y_test = torch.as_tensor(labels_test)
    log(f"[data] {preset}: {len(y_train)} training, {len(y_val)} validation, {len(y_test)} "
        f"test images")

    net = QuantNet(spec.shape, builder(), input_scale=spec.scale, timesteps=config.timesteps,
                   levels=levels, weight_bits=config.weight_bits, bias_bits=config.bias_bits,
                   membrane_bits=config.membrane_bits)
    common = dict(batch_size=config.batch_size, weight_decay=config.weight_decay,
                  generator=generator, log=log, x_val=x_val, y_val=y_val,
                  max_shift=config.max_shift)
    train_epochs(net, x_train, y_train, epochs=config.float_epochs, lr=config.float_lr,
                 label="float", **common)
    float_accuracy = accuracy(net, x_test, y_test)

    net.eval()
    net.fold_batchnorm()
    calibration = x_train[:config.calibration_images]
    net.calibrate(calibration, percentile=config.percentile)
    net.mode = "quant"
    net.calibrate(calibration, set_lambdas=False)  # |logit| bound of the quantized net
    best = {"val": accuracy(net, x_val, y_val), "epoch": 0, "state": best_state(net)}
    qat_start = best["state"]
    log(f"[calibrate] quantized ({config.weight_bits}-bit weights, L={levels}) before "
        f"retraining: val {best['val']:.4f}")

    def keep_best(epoch, val):
        if val >= best["val"]:
            best.update(val=val, epoch=epoch + 1, state=best_state(net))

    train_epochs(net, x_train, y_train, epochs=config.qat_epochs, lr=config.qat_lr,
                 label="qrelu", on_epoch=keep_best, **common)
    net.load_state_dict(best["state"])
    refined = {}
    if refine is not None:
        refined = refine(net, {"x_train": x_train, "y_train": y_train, "x_val": x_val,
                               "y_val": y_val, "x_test": x_test, "y_test": y_test,
                               "train_kwargs": common, "lr": config.qat_lr,
                               "qat_start": qat_start}) or {}
    qrelu_accuracy = accuracy(net, x_test, y_test)

    metadata = {
        "recipe": RECIPE, "preset": preset, "config": asdict(config), "seed": config.seed,
        "epochs": {"float": config.float_epochs, "qat": config.qat_epochs},
        "selected_qat_epoch": best["epoch"], "val_qrelu_accuracy": best["val"],
        "timesteps": config.timesteps, "levels": levels, "layers": _public_specs(net),
        "ann_float_accuracy": float_accuracy, "ann_qrelu_accuracy": qrelu_accuracy,
        "test_images": len(y_test), "validation_images": len(y_val),
        "training_images": len(y_train), "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(), "flush_denormal": True,
        **refined, **(extra_metadata or {}),
    }
    dataset = {"name": "mnist", "split": {"train": "MNIST train minus validation",
                                          "validation": dict(VALIDATION),
                                          "test": "MNIST t10k"}}
    kwargs = dict(name=bundle_name, input_spec=INPUT_SPEC, dataset=dataset)
    count = min(config.snn_calibration_images, len(train_index))
    # Calibration on training images, the variant kept by its validation accuracy
    # (spikeforge.train.robust); the test set only measures.
    pixels = golden.quantize_input(split.x_train[train_index[:count]], spec)
    network, record = convert_and_calibrate(
        net, metadata=metadata, train_pixels=pixels, val_raw=split.x_train[val_index],
        val_labels=split.y_train[val_index], samples=count, passes=config.snn_calibration_passes,
        seed=config.seed, log=log, **kwargs)
    converted = golden.network_from_parts(*network_parts(net, metadata=metadata, **kwargs))
    training_seconds = time.perf_counter() - started
    metadata["training_seconds"] = round(training_seconds, 1)
    metadata.update(record)
    metadata["snn_accuracy_uncalibrated"] = snn_accuracy(converted, raw_test, labels_test)
    snn = metadata["snn_accuracy"] = snn_accuracy(network, raw_test, labels_test)
    loss = metadata["conversion_loss_points"] = round(100 * (qrelu_accuracy - snn), 2)
    manifest, _ = network_parts(net, metadata=metadata, **kwargs)
    network = golden.write_bundle(out, manifest, golden.network_to_parts(network)[1])
    log(f"[summary] {preset}: ANN float {float_accuracy:.4f}  quantized ANN {qrelu_accuracy:.4f}"
        f"  SNN (golden, T={config.timesteps}) {snn:.4f} on {len(y_test)} test images; "
        f"ANN -> SNN loss {loss:+.2f} points; trained in {training_seconds:.0f} s; wrote {out}")
    return MnistRun(net, network, float_accuracy, qrelu_accuracy, snn, training_seconds)
