"""The hyperspectral presets: ACE-SNN-style 3D and hybrid 3D/2D SNNs trained directly.

Recipe (DIET-SNN's hybrid start, then direct SNN training, :mod:`spikeforge.train.direct`):

1. **Data** (:mod:`spikeforge.data.hsi`): integer PCA of the whole scene to ``components``
   unit-variance components, 8-bit input quantisation of ``-input_range .. input_range``,
   reflect-padded ``patch x patch`` patches, a stratified split (random pixels, or spatially
   disjoint) with the stated training fraction and seed; all recorded in the bundle's
   ``dataset["hsi"]`` so ``spikeforge golden`` rebuilds the test inputs bit for bit.
2. **Float ANN** (ReLU, batch norm) on the training patches with random flips and 90-degree
   rotations (the patch's 8 symmetries, which keep integer inputs integer). Its test accuracy
   is the float baseline.
3. **Quantized ANN** (the conversion route's step): batch norms folded, thresholds calibrated
   (99.9th percentile of each layer's activations), then trained with ``weight_bits`` weights
   and quantized ReLUs of ``L = T`` levels and learnable clip ``theta``.
4. **Direct SNN training** from there (DIET-SNN's hybrid start): surrogate-gradient BPTT over
   ``T`` timesteps of the integer SNN (direct analog input, QAT weights, learnable per-layer
   threshold and multiplicative leak starting at 1), then export. The training forward pass
   is the integer SNN itself, so its test accuracy is the golden model's (re-checked on the
   first ``golden_check`` test pixels at export; the tests check the whole split).

There is no validation split and no model selection: every run trains for fixed epochs and
reports the final network.

Architectures (``components = 16``, ``patch = 11``; channels <= 64, kernels <= 10x3x3). Both
fit the accelerator's default design with the leak multiplier on
(``AcceleratorConfig(leak_multiplier=True)``): every spiking layer's output bitmap
(``T x positions x 64`` lanes) fits the 65536-bit spike memory, i.e. at most 204 positions at
T = 5 (the first layer's spectral stride keeps its output at 2 planes of 9 x 9), and the
weights take at most 2048 rows of 64 (``docs/conv3d.md``).

``indian-pines-3d``
    conv3d 28@(10,3,3) stride (6,1,1) -> conv3d 64@(2,3,3) -> conv3d 32@(1,3,3) -> flatten ->
    fc 64 -> fc K (2034 weight rows).
``indian-pines-hybrid``
    conv3d 24@(10,3,3) stride (6,1,1) -> conv3d 48@(1,3,3) -> fold the spectral axis into
    channels (flatten of axes 0..1: 48 x 2 = 96 channels) -> conv2d 32@3x3 -> flatten ->
    fc 64 -> fc K (HybridSN's 3D-then-2D layout, narrowed; 2034 weight rows).
"""

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from spikeforge import golden
from spikeforge.data import hsi

from .direct import DirectSNN, mode_optimizer, network_parts
from .fit import run_epoch

__all__ = ["RECIPE", "HSI_PRESETS", "NARROW_SNN_PHASE", "HSIConfig", "HSIRun", "specs_3d",
           "specs_hybrid", "train_hsi", "train_hsi_preset", "dihedral"]

RECIPE = "hsi-direct-snn-v1"


def _conv3d(name, channels, kernel, stride=(1, 1, 1)):
    return {"name": name, "type": "conv3d", "out_channels": channels, "kernel": list(kernel),
            "stride": list(stride), "padding": [0, 0, 0], "bn": True}


def specs_3d(classes, hidden=64):
    """``indian-pines-3d`` (module docstring)."""
    return [_conv3d("c1", 28, (10, 3, 3), (6, 1, 1)), _conv3d("c2", 64, (2, 3, 3)),
            _conv3d("c3", 32, (1, 3, 3)), {"name": "flat", "type": "flatten"},
            {"name": "fc1", "type": "linear", "out_features": hidden, "bn": True},
            {"name": "fc2", "type": "linear", "out_features": classes}]


def specs_hybrid(classes, hidden=64):
    """``indian-pines-hybrid`` (module docstring)."""
    return [_conv3d("c1", 24, (10, 3, 3), (6, 1, 1)), _conv3d("c2", 48, (1, 3, 3)),
            {"name": "fold", "type": "flatten", "start_dim": 0, "end_dim": 1},
            {"name": "c3", "type": "conv2d", "out_channels": 32, "kernel": [3, 3],
             "stride": [1, 1], "padding": [0, 0], "bn": True},
            {"name": "flat", "type": "flatten"},
            {"name": "fc1", "type": "linear", "out_features": hidden, "bn": True},
            {"name": "fc2", "type": "linear", "out_features": classes}]


#: The SNN phase of a narrow-membrane run (``train_hsi_preset``): the saturating membrane
#: needs more epochs at a higher learning rate than the 16-bit recipe's 5 at 1e-4.
NARROW_SNN_PHASE = {"snn_epochs": 40, "snn_lr": 1e-3}

#: Preset name -> (bundle name, scene, layer-spec builder).
HSI_PRESETS = {"indian-pines-3d": ("indian_pines_3d", "indian-pines", specs_3d),
               "indian-pines-hybrid": ("indian_pines_hybrid", "indian-pines", specs_hybrid)}


@dataclass
class HSIConfig:
    """Hyper-parameters of the HSI recipe (all recorded in the bundle's metadata)."""

    components: int = 16
    patch: int = 11
    split: str = "random"          # or "disjoint"
    train_fraction: float = 0.3
    split_seed: int | None = None  # None: the same as seed
    input_bits: int = 8
    input_range: float = 4.0       # raw_min = -input_range, raw_max = +input_range
    ann_epochs: int = 40
    qann_epochs: int = 10
    snn_epochs: int = 5
    batch_size: int = 64
    ann_lr: float = 1e-3
    qann_lr: float = 3e-4
    snn_lr: float = 1e-4
    leak_lr: float = 3e-3           # the leak factors' learning rate in the SNN phase
    augment: bool = True
    timesteps: int = 5
    weight_bits: int = 6
    bias_bits: int = 24
    membrane_bits: int = 16
    surrogate: str = "linear"       # the saturating membrane's gradient (train.lif.SURROGATES)
    shift_currents: bool = False    # per-layer current shifts instead of coarser weights
    leak_frac_bits: int = 8
    v_init: str = "half"
    percentile: float = 99.9
    calibration_patches: int = 1024
    golden_check: int = 256         # test pixels the golden model re-checks at export
    seed: int = 0
    train_limit: int | None = None  # smoke tests: only the first N training patches
    eval_limit: int | None = None   # smoke tests: only the first N test patches


@dataclass
class HSIRun:
    """What :func:`train_hsi` returns (accuracies are fractions)."""

    net: DirectSNN
    network: golden.Network
    float_accuracy: float
    qrelu_accuracy: float
    snn_accuracy: float
    metrics: dict
    training_seconds: float


def dihedral(x, generator):
    """Apply one of the 8 flips/rotations of the last two axes to every sample, at random."""
    choice = torch.randint(0, 8, (x.shape[0],), generator=generator)
    out = x.clone()
    for k in range(8):
        mask = choice == k
        if not bool(mask.any()):
            continue
        sample = torch.rot90(x[mask], k % 4, dims=(-2, -1))
        out[mask] = torch.flip(sample, dims=(-1,)) if k >= 4 else sample
    return out


@torch.no_grad()
def _predict(net, x, batch_size=512):
    net.eval()
    return torch.cat([net(x[i:i + batch_size]).argmax(dim=1)
                      for i in range(0, len(x), batch_size)])


def _epochs(net, x, y, *, epochs, lr, config, generator, log):
    """Adam with cosine decay in ``net.mode``; one log line per epoch (loss, training accuracy)."""
    label = net.mode
    steps = max(1, epochs * ((len(x) + config.batch_size - 1) // config.batch_size))
    optimizer, schedule = mode_optimizer(net, lr=lr, leak_lr=config.leak_lr, steps=steps)
    for epoch in range(epochs):
        start = time.perf_counter()
        loss, train = run_epoch(
            net, x, y, optimizer=optimizer, schedule=schedule, batch_size=config.batch_size,
            generator=generator,
            augment=(lambda batch: dihedral(batch, generator)) if config.augment else
            (lambda batch: batch))
        log(f"[{label}] epoch {epoch + 1}/{epochs}  loss {loss:.4f}  "
            f"train {train:.4f}  ({time.perf_counter() - start:.1f} s)")


def _percent(metrics):
    return {key: round(100 * metrics[key], 2) for key in ("oa", "aa", "kappa")}


def train_hsi(preset, out, config=None, *, data_dir, log=print, extra_metadata=None):
    """Train ``preset`` (a key of :data:`HSI_PRESETS`) and write its bundle to ``out``.

    Returns an :class:`HSIRun`. ``data_dir`` holds ``hsi/`` (see :mod:`spikeforge.data.hsi`).
    """
    if preset not in HSI_PRESETS:
        raise ValueError(f"unknown HSI preset {preset!r}; expected one of "
                         f"{', '.join(HSI_PRESETS)}")
    config = config or HSIConfig()
    flushing = torch.set_flush_denormal(True)   # see train/mnist.py: subnormals are slow
    try:
        return _train(preset, out, config, data_dir=data_dir, log=log,
                      extra_metadata=extra_metadata)
    finally:
        if flushing:
            torch.set_flush_denormal(False)


def _train(preset, out, config, *, data_dir, log, extra_metadata):
    bundle_name, scene_name, builder = HSI_PRESETS[preset]
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    split_seed = config.seed if config.split_seed is None else config.split_seed
    scene = hsi.load_scene(scene_name, data_dir)
    data = hsi.build(scene, components=config.components, patch=config.patch,
                     split=config.split, fraction=config.train_fraction, seed=split_seed)
    shape = [1, config.components, config.patch, config.patch]
    input_spec = {"shape": shape, "bits": config.input_bits,
                  "raw_min": -float(config.input_range), "raw_max": float(config.input_range)}
    spec = golden.InputSpec(tuple(shape), config.input_bits, input_spec["raw_min"],
                            input_spec["raw_max"])

    def pixels(raw):
        return torch.as_tensor(golden.quantize_input(raw, spec), dtype=torch.float32)

    x_train = pixels(data.x_train[:config.train_limit])
    y_train = torch.as_tensor(data.y_train[:config.train_limit])
    raw_test, y_test = data.x_test[:config.eval_limit], data.y_test[:config.eval_limit]
    x_test = pixels(raw_test)
    y_test = np.asarray(y_test)
    classes = scene.num_classes
    log(f"[data] {preset}: {len(y_train)} training and {len(y_test)} test pixels "
        f"({config.split} split, train fraction {config.train_fraction}, seed {split_seed}), "
        f"patches {tuple(shape)}")

    net = DirectSNN(shape, builder(classes), input_scale=spec.scale,
                    input_zero=1 << (config.input_bits - 1), input_bits=config.input_bits,
                    timesteps=config.timesteps, weight_bits=config.weight_bits,
                    bias_bits=config.bias_bits, membrane_bits=config.membrane_bits,
                    leak_frac_bits=config.leak_frac_bits, v_init=config.v_init,
                    surrogate=config.surrogate, shift_currents=config.shift_currents)
    common = dict(config=config, generator=generator, log=log)
    _epochs(net, x_train, y_train, epochs=config.ann_epochs, lr=config.ann_lr, **common)
    ann = hsi.classification_metrics(y_test, _predict(net, x_test).numpy(), classes)
    net.eval()
    net.fold_batchnorm()
    lams = net.calibrate(x_train[:config.calibration_patches], percentile=config.percentile)
    net.mode = "qann"
    _epochs(net, x_train, y_train, epochs=config.qann_epochs, lr=config.qann_lr, **common)
    qann = hsi.classification_metrics(y_test, _predict(net, x_test).numpy(), classes)
    output_shift = net.calibrate_output_shift(x_train[:config.calibration_patches],
                                              percentile=config.percentile)
    net.mode = "snn"
    net.check_exact()
    converted = hsi.classification_metrics(y_test, _predict(net, x_test).numpy(), classes)
    log(f"[convert] test OA: float ANN {100 * ann['oa']:.2f} %, quantized ANN (L=T="
        f"{config.timesteps}, {config.weight_bits}-bit) {100 * qann['oa']:.2f} %, converted "
        f"SNN {100 * converted['oa']:.2f} %")
    _epochs(net, x_train, y_train, epochs=config.snn_epochs, lr=config.snn_lr, **common)
    net.check_exact()
    predictions = _predict(net, x_test).numpy()
    trained = hsi.classification_metrics(y_test, predictions, classes)

    metadata = {
        "recipe": RECIPE, "preset": preset, "config": asdict(config), "seed": config.seed,
        "epochs": {"ann": config.ann_epochs, "qann": config.qann_epochs,
                   "snn": config.snn_epochs},
        "timesteps": config.timesteps, "layers": [
            {k: v for k, v in s.items() if k != "out_shape"} for s in net.specs],
        "ann_float_accuracy": ann["oa"], "ann_float_metrics": _percent(ann),
        "ann_qrelu_accuracy": qann["oa"], "ann_qrelu_metrics": _percent(qann),
        "snn_converted_metrics": _percent(converted), "calibrated_thetas": lams,
        "output_current_shift": output_shift,
        "test_images": len(y_test), "training_images": len(y_train),
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "flush_denormal": True, **(extra_metadata or {}),
    }
    dataset = {"name": scene_name, "hsi": data.record}
    if config.membrane_bits < 16:   # a narrow-membrane run names its width
        bundle_name = f"{bundle_name}_m{config.membrane_bits}"
    kwargs = dict(name=bundle_name, input_spec=input_spec, dataset=dataset)
    network = golden.network_from_parts(*network_parts(net, metadata=metadata, **kwargs))
    # The training forward pass is the integer SNN; the golden model confirms it on a sample
    # here (tests/test_train_hsi.py and `spikeforge golden` do the whole test split).
    check = min(config.golden_check, len(y_test))
    result = golden.run(network, golden.quantize_input(raw_test[:check], network.input))
    if not np.array_equal(result.predictions, _predict(net, x_test[:check]).numpy()):
        raise AssertionError("the exported SNN disagrees with the training forward pass")
    training_seconds = time.perf_counter() - started
    metadata.update(training_seconds=round(training_seconds, 1), snn_accuracy=trained["oa"],
                    snn_metrics=_percent(trained),
                    snn_correct=int((predictions == y_test).sum()),
                    snn_per_class=trained["per_class"], golden_checked_pixels=check)
    manifest, arrays = network_parts(net, metadata=metadata, **kwargs)
    network = golden.write_bundle(out, manifest, arrays)
    log(f"[summary] {preset}: float ANN OA {100 * ann['oa']:.2f} %, SNN (golden, "
        f"T={config.timesteps}, {config.weight_bits}-bit weights, {config.membrane_bits}-bit "
        f"membrane) OA {100 * trained['oa']:.2f} % AA "
        f"{100 * trained['aa']:.2f} % kappa {100 * trained['kappa']:.2f} % on {len(y_test)} "
        f"test pixels; trained in {training_seconds:.0f} s; wrote {out}")
    return HSIRun(net, network, ann["oa"], qann["oa"], trained["oa"], trained, training_seconds)


def train_hsi_preset(preset, out, *, epochs=None, timesteps=None, weight_bits=None, seed=0,
                     data_dir=None, train_limit=None, log=print, split=None,
                     train_fraction=None, membrane_bits=None, surrogate=None):
    """:func:`train_hsi` with the ``spikeforge train`` options (``None``: the preset's).

    ``epochs`` sets all three phases; ``train_limit`` (smoke tests) also limits the test
    pixels to N and the golden re-check to 64. ``membrane_bits`` below 16 trains the SNN
    for that membrane (the SNN phase saturates it as the integer contract does) with
    per-layer current shifts (``HSIConfig.shift_currents``) and :data:`NARROW_SNN_PHASE`'s
    SNN epochs and learning rate (``epochs`` still sets every phase), by default with the
    ``"stacked"`` surrogate (SpQuant-SNN's); ``surrogate`` chooses it explicitly.
    """
    overrides = {"seed": seed}
    if membrane_bits is not None and membrane_bits < 16:
        # Narrow membranes: current shifts, and a longer, faster SNN phase (indian-pines-3d
        # at 4 bits, seed 0: 97.52 % OA after 5 epochs at 1e-4, 98.73 % after 20 at 3e-4,
        # 99.32 % after 40 at 1e-3; README "Narrow membranes").
        overrides.update(shift_currents=True, **NARROW_SNN_PHASE)
        if surrogate is None:
            surrogate = "stacked"
    if epochs is not None:
        overrides.update(ann_epochs=epochs, qann_epochs=epochs, snn_epochs=epochs)
    for key, value in (("timesteps", timesteps), ("weight_bits", weight_bits),
                       ("split", split), ("train_fraction", train_fraction),
                       ("membrane_bits", membrane_bits), ("surrogate", surrogate)):
        if value is not None:
            overrides[key] = value
    if train_limit is not None:
        overrides.update(train_limit=train_limit, eval_limit=train_limit, golden_check=64)
    return train_hsi(preset, out, HSIConfig(**overrides), data_dir=data_dir, log=log)
