"""Bring your own network: :func:`from_torch` trains a user's float PyTorch CNN into a bundle.

The recipe is the presets' (:mod:`spikeforge.train.mnist`), on the user's module:

1. :func:`~spikeforge.train.fxmap.map_module` traces the module with ``torch.fx`` and maps it
   onto :class:`~spikeforge.train.qnet.QuantNet` layer specs; anything it cannot map is refused
   here, before any training, with :class:`~spikeforge.train.fxmap.UnmappableModule`;
2. the user's module trains as the float ANN (its own forward pass, dropout included) on the
   raw inputs quantized to ``input_bits`` times the pixel step, i.e. what the SNN's
   direct-encoded first layer sees;
3. its weights and batch norms move into the QuantNet, which checks that it computes the
   same float function; the batch norms fold, the clip values ``lambda`` are calibrated, and
   the quantized-ReLU ANN (``L = T`` levels, ``weight_bits``-bit weights) retrains, keeping the
   epoch of best validation accuracy;
4. conversion to the integer IF-neuron SNN and the robust post-conversion step of
   :func:`spikeforge.train.robust.convert_and_calibrate` (its docstring says what it does and
   what was measured), then the bundle is written to ``out``.

Accuracies are measured on the validation split (``x_val``/``y_val``, or 10 % of the training
data, at most 5000 samples, held out with ``seed``): the user's test set is theirs to keep.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeforge import golden
from spikeforge.golden.manifest import INPUT_BITS, WEIGHT_BITS

from .fit import accuracy, ann_inputs, best_state, snn_accuracy, train_epochs
from .fxmap import UnmappableModule, map_module
from .qnet import QuantNet
from .robust import convert_and_calibrate

__all__ = ["RECIPE", "UnmappableModule", "TorchResult", "from_torch"]

RECIPE = "from-torch-qat-qrelu-conversion-v1"


@dataclass
class TorchResult:
    """What :func:`from_torch` returns (accuracies are fractions, on the validation split).

    Members
    -------
    bundle : pathlib.Path
        The written bundle.
    network : spikeforge.golden.Network
    float_accuracy, qrelu_accuracy, snn_accuracy : float
        The float ANN, the quantized-ReLU ANN and the SNN (golden model, ``T`` steps).
    conversion_loss : float
        ``qrelu_accuracy - snn_accuracy`` in percentage points: what the ANN -> SNN
        conversion costs.
    fits : spikeforge.rtl.config.FitReport
        Whether the network runs on the default board's accelerator (truthy), and else why.
    validation_images : int
    seconds : float
    """

    bundle: Path
    network: object
    float_accuracy: float
    qrelu_accuracy: float
    snn_accuracy: float
    conversion_loss: float
    fits: object
    validation_images: int
    seconds: float


def _array(values, what):
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.ndim < 1 or len(values) == 0:
        raise ValueError(f"{what} is empty")
    return values


def _labels(values, what, count):
    labels = _array(values, what)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer) and not (
            np.issubdtype(labels.dtype, np.floating) and np.array_equal(labels, labels.round())):
        raise ValueError(f"{what} must hold {count} integer labels, one per sample, not an "
                         f"array of shape {labels.shape} and dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise ValueError(f"{what} holds the negative label {labels.min()}")
    return labels


def _copy_weights(mapped, net):
    """Move the user's trained weights and batch norms into ``net`` (same float function)."""
    with torch.no_grad():
        for name, module in mapped.synaptic.items():
            target = net.synaptic[name]
            target.weight.copy_(module.weight)
            if module.bias is None:
                target.bias.zero_()
            else:
                target.bias.copy_(module.bias)
        for name, norm in mapped.norms.items():
            target = net.norms[name]
            target.running_mean.copy_(norm.running_mean)
            target.running_var.copy_(norm.running_var)
            target.eps = norm.eps
            if norm.affine:
                target.weight.copy_(norm.weight)
                target.bias.copy_(norm.bias)
            else:
                target.weight.fill_(1.0)
                target.bias.zero_()


def _check_same(module, net, x):
    """The QuantNet must compute the user's float function (a check on the mapping)."""
    module.eval()
    net.eval()
    with torch.no_grad():
        want, got = module(x), net(x)
    scale = float(want.abs().max()) + 1e-6
    error = float((want - got).abs().max())
    if tuple(want.shape) != tuple(got.shape) or error > 1e-3 * scale:
        raise RuntimeError(f"the mapped network computes a different function from the module "
                           f"(largest logit difference {error:.3g} of {scale:.3g}); this is a "
                           f"bug in spikeforge.train.fxmap")


def from_torch(module, x_train, y_train, *, out, timesteps=8, weight_bits=4, epochs=2,
               x_val=None, y_val=None, input_bits=8, raw_range=(0.0, 1.0), seed=0, log=print,
               batch_size=128, name=None):
    """Train a user's float PyTorch module into an integer SNN bundle written to ``out``.

    Parameters
    ----------
    module : torch.nn.Module
        Any module ``torch.fx`` can trace whose layers :mod:`spikeforge.train.fxmap` maps
        (``Conv2d``, ``Conv3d``, ``Linear``, ``ReLU``, ``BatchNorm`` (folded), ``AvgPool2d``,
        ``MaxPool2d``, ``AdaptiveAvgPool2d(1)``, ``Flatten``, ``Dropout`` (dropped), residual
        ``+``), ending in a ``Conv`` or ``Linear`` output layer without activation. It is
        trained in place (the float ANN).
    x_train : array or tensor (N, *input_shape)
        Raw inputs with values in ``raw_range`` (e.g. MNIST pixels 0..255 with
        ``raw_range=(0.0, 255.0)``).
    y_train : array or tensor (N,)
        Integer class labels ``0 .. classes - 1``.
    out : path
        Bundle to write.
    timesteps : int
        SNN timesteps ``T`` (the quantized ReLU has ``L = T`` levels).
    weight_bits : int
        2..8.
    epochs : int
        Epochs of each training phase (float ANN, then quantized ANN).
    x_val, y_val : array or tensor, optional
        Validation split (model selection, the post-conversion check and the reported
        accuracies); default: 10 % of the training data (at most 5000 samples), held out.
    input_bits : int
        Bits of the direct-encoded input (1..16).
    raw_range : (float, float)
        Raw values mapped onto ``0`` and ``2**input_bits - 1``.
    seed : int
        Seeds the validation split, the shuffling, dropout and the calibration samples (not
        the module's initialisation: it arrives initialised).
    log : callable
        Receives one line per epoch and step and the summary line.
    batch_size : int
    name : str, optional
        The network's name in the bundle (default: the module's class name).

    Returns
    -------
    TorchResult

    Raises
    ------
    UnmappableModule
        A module or operation that has no form on the accelerator (before any training).
    ValueError
        Inconsistent data or arguments.
    """
    started = time.perf_counter()
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    if not isinstance(weight_bits, int) or not WEIGHT_BITS[0] <= weight_bits <= WEIGHT_BITS[1]:
        raise ValueError(f"weight_bits must be an integer in {WEIGHT_BITS[0]}..{WEIGHT_BITS[1]}, "
                         f"not {weight_bits!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    if not isinstance(input_bits, int) or not INPUT_BITS[0] <= input_bits <= INPUT_BITS[1]:
        raise ValueError(f"input_bits must be an integer in {INPUT_BITS[0]}..{INPUT_BITS[1]}, "
                         f"not {input_bits!r}")
    low, high = (float(v) for v in raw_range)
    if not high > low:
        raise ValueError(f"raw_range must be (low, high) with low < high, not {raw_range!r}")
    raw_train = _array(x_train, "x_train").astype(np.float64)
    labels_train = _labels(y_train, "y_train", len(raw_train))
    if x_val is None:
        if y_val is not None:
            raise ValueError("y_val is given without x_val")
        order = np.random.default_rng(seed).permutation(len(raw_train))
        size = max(1, min(5000, len(raw_train) // 10))
        raw_val, labels_val = raw_train[order[:size]], labels_train[order[:size]]
        raw_train, labels_train = raw_train[order[size:]], labels_train[order[size:]]
    else:
        raw_val = _array(x_val, "x_val").astype(np.float64)
        labels_val = _labels(y_val, "y_val", len(raw_val))
        if raw_val.shape[1:] != raw_train.shape[1:]:
            raise ValueError(f"x_val has samples of shape {raw_val.shape[1:]}, x_train of "
                             f"{raw_train.shape[1:]}")
    if len(raw_train) == 0:
        raise ValueError("no training samples are left after the validation split")
    spec = golden.InputSpec(tuple(int(s) for s in raw_train.shape[1:]), input_bits, low, high)
    x_t, _ = ann_inputs(raw_train, spec)
    x_v, _ = ann_inputs(raw_val, spec)
    y_t, y_v = torch.as_tensor(labels_train), torch.as_tensor(labels_val)

    mapped = map_module(module, x_t[:2])
    net = QuantNet(spec.shape, mapped.specs, input_scale=spec.scale, timesteps=timesteps,
                   levels=timesteps, weight_bits=weight_bits)
    classes = net.specs[-1]["out_shape"][0] if len(net.specs[-1]["out_shape"]) == 1 else None
    if classes is None:
        raise UnmappableModule(f"{mapped.sources[net.output_name]} "
                               f"({type(mapped.synaptic[net.output_name]).__name__}): the "
                               f"output layer must produce one value per class, not a map of "
                               f"shape {tuple(net.specs[-1]['out_shape'])}")
    top = int(max(labels_train.max(), labels_val.max()))
    if top >= classes:
        raise ValueError(f"the labels go up to {top}, but the network has {classes} outputs")
    log(f"[map] {type(module).__name__}: {len(mapped.specs)} layers ("
        + ", ".join(f"{s['name']}:{s['type']}" for s in mapped.specs) + ")")
    log(f"[data] {len(y_t)} training, {len(y_v)} validation samples of shape {spec.shape}")

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    common = dict(batch_size=batch_size, weight_decay=1e-4, generator=generator, log=log,
                  x_val=x_v, y_val=y_v)
    flushing = torch.set_flush_denormal(True)   # see spikeforge.train.mnist.train_mnist
    try:
        train_epochs(module, x_t, y_t, epochs=epochs, lr=2e-3, label="float", **common)
        float_accuracy = accuracy(module, x_v, y_v)
        _copy_weights(mapped, net)
        _check_same(module, net, x_v[:256])

        net.fold_batchnorm()
        calibration = x_t[:2048]
        net.calibrate(calibration, percentile=99.9)
        net.mode = "quant"
        net.calibrate(calibration, set_lambdas=False)
        best = {"val": accuracy(net, x_v, y_v), "epoch": 0, "state": best_state(net)}
        log(f"[calibrate] quantized ({weight_bits}-bit weights, L={timesteps}) before "
            f"retraining: val {best['val']:.4f}")

        def keep_best(epoch, val):
            if val >= best["val"]:
                best.update(val=val, epoch=epoch + 1, state=best_state(net))

        train_epochs(net, x_t, y_t, epochs=epochs, lr=5e-4, label="qrelu", on_epoch=keep_best,
                     **common)
        net.load_state_dict(best["state"])
        qrelu_accuracy = accuracy(net, x_v, y_v)
    finally:
        if flushing:
            torch.set_flush_denormal(False)

    metadata = {
        "recipe": RECIPE, "module": type(module).__name__, "seed": seed,
        "epochs": {"float": epochs, "qat": epochs}, "selected_qat_epoch": best["epoch"],
        "timesteps": timesteps, "levels": timesteps, "weight_bits": weight_bits,
        "layers": [{k: v for k, v in s.items() if k not in ("sources", "out_shape")}
                   for s in net.specs],
        "layer_sources": dict(mapped.sources),
        "ann_float_accuracy": float_accuracy, "ann_qrelu_accuracy": qrelu_accuracy,
        "accuracy_split": "validation", "validation_images": len(y_v),
        "training_images": len(y_t), "torch_version": torch.__version__,
    }
    input_spec = {"shape": list(spec.shape), "bits": input_bits, "raw_min": low,
                  "raw_max": high}
    network, conversion = convert_and_calibrate(
        net, name=name or type(module).__name__, input_spec=input_spec,
        dataset={"name": "user", "split": {"validation": "x_val" if x_val is not None
                                           else f"10 % of x_train, seed {seed}"}},
        metadata=metadata, train_pixels=golden.quantize_input(raw_train, spec),
        val_raw=raw_val, val_labels=labels_val, seed=seed, log=log)
    snn = snn_accuracy(network, raw_val, labels_val)
    loss = round(100 * (qrelu_accuracy - snn), 2)
    metadata.update(conversion, snn_accuracy=snn, conversion_loss_points=loss,
                    training_seconds=round(time.perf_counter() - started, 1))
    manifest, arrays = golden.network_to_parts(network)
    network = golden.write_bundle(out, {**manifest, "metadata": {**manifest["metadata"],
                                                                 **metadata}}, arrays)
    fits = default_fit(network)
    log(f"[summary] {network.name}: ANN float {float_accuracy:.4f}  quantized ANN "
        f"{qrelu_accuracy:.4f}  SNN (golden, T={timesteps}) {snn:.4f} on {len(y_v)} "
        f"validation samples; ANN -> SNN loss {loss:+.2f} points; {fits}; wrote {out}")
    return TorchResult(Path(out), network, float_accuracy, qrelu_accuracy, snn, loss, fits,
                       len(y_v), time.perf_counter() - started)


def default_fit(network):
    """The default board's accelerator's :meth:`~spikeforge.rtl.config.AcceleratorConfig.fits`
    answer for ``network``, with its memory sizes checked as :func:`~spikeforge.rtl.sizing.
    design_for` does."""
    from dataclasses import fields

    from spikeforge.rtl.config import FitReport
    from spikeforge.rtl.sizing import DEFAULT_BOARD, MemorySizes, for_board, sizes_for

    design = for_board(DEFAULT_BOARD)
    report = design.config.fits(network)
    if not report:
        return report
    need = sizes_for(network, design.config, MemorySizes(bias_depth=1, max_layers=1,
                                                         pixel_depth=1, pixel_bits=1))
    over = [f"the network needs {f.name} {getattr(need, f.name)}, the {DEFAULT_BOARD} design "
            f"has {getattr(design.sizes, f.name)}" for f in fields(MemorySizes)
            if getattr(need, f.name) > getattr(design.sizes, f.name)]
    return FitReport(not over, tuple(over))
