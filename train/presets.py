"""The training presets behind ``spikeforge train PRESET``.

``digits-conv``
    The digits recipe (:mod:`spikeforge.train.digits`): scikit-learn 8x8 digits, 8-bit weights.
``mnist-vgg``, ``mnist-resnet``
    The MNIST recipes (:mod:`spikeforge.train.mnist`): VGG-11- and ResNet-18-style SNNs with
    4-bit weights.
``indian-pines-3d``, ``indian-pines-hybrid``
    The hyperspectral recipes (:mod:`spikeforge.train.hsi`): ACE-SNN-style 3D and hybrid 3D/2D
    SNNs, T=5, 6-bit weights, trained directly as SNNs (surrogate gradients, learnable leak
    and threshold) after a float ANN and a quantized ANN.

The conversion presets (digits, MNIST) run the same steps (float ANN, quantized-ReLU ANN,
IF-neuron SNN bundle) on the shared :class:`~spikeforge.train.qnet.QuantNet`; the
hyperspectral ones train :class:`~spikeforge.train.direct.DirectSNN` directly as SNNs after
the two ANN phases. Every preset records in the bundle's metadata the float
ANN, quantized ANN and SNN (golden model) accuracies, the preset, seed, epochs, training time
and torch version.
"""

import time
from dataclasses import dataclass

from spikeforge.golden.manifest import WEIGHT_BITS

__all__ = ["PRESETS", "PRUNABLE_PRESETS", "DIRECT_PRESETS", "NARROW_MEMBRANE_PRESETS",
           "DIRECT_MEMBRANE_BITS", "SURROGATES", "PresetResult", "train_preset"]

#: Preset name -> one-line description.
PRESETS = {
    "digits-conv": "conv SNN on scikit-learn's 8x8 digits (T=8, 8-bit weights)",
    "mnist-vgg": "VGG-11-style conv SNN on MNIST (T=8, 4-bit weights)",
    "mnist-resnet": "ResNet-18-style residual SNN on MNIST (T=8, 4-bit weights)",
    "indian-pines-3d": "ACE-SNN-style 3D SNN on Indian Pines (T=5, 6-bit weights)",
    "indian-pines-hybrid": "ACE-SNN-style hybrid 3D/2D SNN on Indian Pines (T=5, 6-bit weights)",
}
#: Presets that ``prune`` applies to (their recipe has a validation split to choose epochs on).
PRUNABLE_PRESETS = ("mnist-vgg", "mnist-resnet")
#: Presets trained directly as SNNs (:class:`~spikeforge.train.direct.DirectSNN`), which take
#: a membrane width and a saturation surrogate.
DIRECT_PRESETS = ("indian-pines-3d", "indian-pines-hybrid")
#: Presets that train for a narrow membrane (``membrane_bits``): the direct ones, and
#: ``mnist-vgg``, which then trains directly too (:mod:`spikeforge.train.mnist_direct`).
NARROW_MEMBRANE_PRESETS = ("mnist-vgg", *DIRECT_PRESETS)
#: Membrane widths a directly trained SNN may have, inclusive (the training forward pass is
#: exact in float32 up to 16 bits; 2 bits leaves thresholds of 1 only).
DIRECT_MEMBRANE_BITS = (2, 16)
#: The membrane's saturation surrogates (:data:`spikeforge.train.lif.SURROGATES`, written
#: here so that the command line does not import torch; tests/test_train_lif.py checks it).
SURROGATES = ("linear", "stacked")


@dataclass
class PresetResult:
    """Accuracies (fractions) and timing of one training run, and the written network."""

    preset: str
    network: object
    float_accuracy: float
    qrelu_accuracy: float
    snn_accuracy: float
    test_images: int
    seconds: float


#: PyTorch threads of a training run unless told otherwise: one, so that a run gives the same
#: arrays on any machine and under any load (float reductions depend on the thread count).
DEFAULT_THREADS = 1


def train_preset(preset, out, *, epochs=None, timesteps=None, weight_bits=None, seed=0,
                 data_dir=None, train_limit=None, log=print, prune=None, hsi=None,
                 threads=DEFAULT_THREADS, membrane_bits=None, surrogate=None):
    """Train ``preset`` and write its bundle to ``out``.

    Parameters
    ----------
    preset : str
        A key of :data:`PRESETS`.
    out : path
        Bundle to write.
    epochs : int, optional
        Epochs of *each* phase (float ANN, then quantized ANN); default: the preset's.
    timesteps : int, optional
        SNN timesteps ``T`` (the quantized ReLU then has ``L = T`` levels); default 8.
    weight_bits : int, optional
        2..8; default: 8 for digits-conv, 4 for the MNIST presets.
    seed : int
        Seeds the initialisation, shuffling and augmentation (not the data splits).
    data_dir : path, optional
        Folder holding ``mnist/`` (unused by digits-conv).
    train_limit : int, optional
        Smoke tests: use only the first N training images (and, for MNIST, N validation and
        N test images, and at most 64 images for the SNN bias calibration).
    log : callable
        Receives one progress line per epoch and the summary lines.
    prune : dict, optional
        Quantization-aware pruning after QAT (MNIST presets only): the fields of
        :class:`spikeforge.train.prune.PruneConfig` (at least ``sparsity``); the per-round
        report goes to ``log`` and into ``metadata["pruning"]``. A sparsity of 0 prunes
        nothing.
    hsi : dict, optional
        Hyperspectral presets only: ``split`` (``"random"`` or ``"disjoint"``) and
        ``train_fraction`` (see :class:`spikeforge.train.hsi.HSIConfig`).
    threads : int
        PyTorch intra-op threads for the whole run (``torch.set_num_threads``; restored
        afterwards), recorded in the metadata as ``torch_threads``. The same ``seed`` and
        ``threads`` give the same arrays, however loaded the machine.
    membrane_bits : int, optional
        :data:`NARROW_MEMBRANE_PRESETS` only: train for a membrane of this width
        (:data:`DIRECT_MEMBRANE_BITS`; default 16) with per-layer current shifts. Below 16,
        ``mnist-vgg`` is trained directly as an SNN (:mod:`spikeforge.train.mnist_direct`)
        instead of converted.
    surrogate : str, optional
        The saturating membrane's gradient (:data:`SURROGATES`; default ``"stacked"``
        below 16 bits, else ``"linear"``), for the same presets.

    Returns
    -------
    PresetResult
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    low, high = WEIGHT_BITS
    if weight_bits is not None and not low <= weight_bits <= high:
        raise ValueError(f"weight bits must lie in {low}..{high}, not {weight_bits}")
    if prune and prune.get("sparsity") and preset not in PRUNABLE_PRESETS:
        raise ValueError(f"pruning is implemented for the presets {', '.join(PRUNABLE_PRESETS)}"
                         f", not for {preset!r}")
    if (membrane_bits is not None or surrogate is not None) and \
            preset not in NARROW_MEMBRANE_PRESETS:
        raise ValueError(f"membrane-aware training is implemented for the presets "
                         f"{', '.join(NARROW_MEMBRANE_PRESETS)}, not for {preset!r}")
    low, high = DIRECT_MEMBRANE_BITS
    if membrane_bits is not None and not low <= membrane_bits <= high:
        raise ValueError(f"membrane bits must lie in {low}..{high}, not {membrane_bits}")
    if surrogate is not None and surrogate not in SURROGATES:
        raise ValueError(f"surrogate is {surrogate!r}; expected one of {', '.join(SURROGATES)}")
    narrow = membrane_bits is not None and membrane_bits < 16
    if surrogate is not None and preset not in DIRECT_PRESETS and not narrow:
        raise ValueError(f"{preset} at a 16-bit membrane is converted, not trained as an SNN: "
                         f"a surrogate applies only with membrane_bits below 16")
    if prune and prune.get("sparsity") and narrow:
        raise ValueError("pruning a network trained for a narrow membrane is not implemented; "
                         "leave out membrane_bits or prune")
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(preset, out, epochs=epochs, timesteps=timesteps, weight_bits=weight_bits,
                      seed=seed, data_dir=data_dir, train_limit=train_limit, log=log,
                      prune=prune, hsi=hsi, threads=threads, membrane_bits=membrane_bits,
                      surrogate=surrogate)
    finally:
        torch.set_num_threads(previous)


def _train(preset, out, *, epochs, timesteps, weight_bits, seed, data_dir, train_limit, log,
           prune, hsi, threads, membrane_bits, surrogate):
    started = time.perf_counter()
    if preset == "digits-conv":
        from .digits import DigitsConfig, train_digits

        overrides = {"seed": seed, "train_limit": train_limit}
        if epochs is not None:
            overrides.update(float_epochs=epochs, qat_epochs=epochs)
        if timesteps is not None:
            overrides.update(timesteps=timesteps, levels=timesteps)
        if weight_bits is not None:
            overrides["weight_bits"] = weight_bits
        config = DigitsConfig(**overrides)
        extra = {"preset": preset, "seed": seed, "torch_threads": threads,
                 "epochs": {"float": config.float_epochs, "qat": config.qat_epochs}}
        run = train_digits(out, config, log=log, extra_metadata=extra)
        test_images = run.network.metadata["test_images"]
    elif preset.startswith("indian-pines"):
        from .hsi import train_hsi_preset

        run = train_hsi_preset(preset, out, epochs=epochs, timesteps=timesteps,
                               weight_bits=weight_bits, seed=seed, data_dir=data_dir,
                               train_limit=train_limit, log=log, membrane_bits=membrane_bits,
                               surrogate=surrogate, **(hsi or {}))
        test_images = run.network.metadata["test_images"]
    elif membrane_bits is not None and membrane_bits < 16:   # mnist-vgg, trained directly
        from .mnist_direct import MnistDirectConfig, train_mnist_direct

        overrides = {"seed": seed, "membrane_bits": membrane_bits, "train_limit": train_limit,
                     "eval_limit": train_limit}
        if train_limit is not None:
            overrides["calibration_images"] = min(256, train_limit)
        if epochs is not None:
            overrides.update(ann_epochs=epochs, qann_epochs=epochs, snn_epochs=epochs)
        for key, value in (("timesteps", timesteps), ("weight_bits", weight_bits),
                           ("surrogate", surrogate)):
            if value is not None:
                overrides[key] = value
        extra = {"preset": preset, "seed": seed, "torch_threads": threads}
        run = train_mnist_direct(out, MnistDirectConfig(**overrides), data_dir=data_dir,
                                 log=log, extra_metadata=extra)
        test_images = run.network.metadata["test_images"]
    else:
        from .mnist import MnistConfig, train_mnist

        overrides = {"seed": seed, "train_limit": train_limit, "eval_limit": train_limit}
        if train_limit is not None:   # smoke tests: a small bias calibration too
            overrides["snn_calibration_images"] = min(64, train_limit)
        if epochs is not None:
            overrides.update(float_epochs=epochs, qat_epochs=epochs)
        if timesteps is not None:
            overrides["timesteps"] = timesteps
        if weight_bits is not None:
            overrides["weight_bits"] = weight_bits
        if prune and prune.get("sparsity"):
            from .prune import PruneConfig
            from .prune_mnist import train_mnist_pruned

            run = train_mnist_pruned(preset, out, MnistConfig(**overrides), PruneConfig(**prune),
                                     data_dir=data_dir, log=log)
        else:
            run = train_mnist(preset, out, MnistConfig(**overrides), data_dir=data_dir, log=log)
        test_images = run.network.metadata["test_images"]
    return PresetResult(preset, run.network, run.float_accuracy, run.qrelu_accuracy,
                        run.snn_accuracy, test_images, time.perf_counter() - started)
