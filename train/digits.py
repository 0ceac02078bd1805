"""The digits recipe: float ANN -> quantized-ReLU ANN -> IF-neuron SNN bundle (SIA style).

Run ``python -m spikeforge.train.digits --out spikeforge/models/digits_snn.sfb``.

1. Train a float conv net on scikit-learn's 8x8 digits (the ANN sees the 8-bit quantized
   pixels ``quantize_input(raw) * scale``, i.e. the real values the SNN's first layer sees).
2. Calibrate each ReLU's clip value ``lambda`` (a percentile of its activations), then retrain
   with quantized ReLUs (``L`` levels, learnable ``lambda``) and fake-quantized weights and
   biases (:mod:`spikeforge.train.quant`).
3. Swap every quantized ReLU for an IF neuron (leak none, reset subtract, ``v_init`` half)
   and export the integer bundle (:mod:`spikeforge.train.convert`); measure its accuracy with
   the golden model.

Everything is seeded, so a rerun on the same machine and torch build gives the same bundle.
"""

import argparse
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spikeforge import golden
from spikeforge.data.datasets import DIGITS_SPLIT, digits_split

from .convert import export_bundle
from .qnet import QuantNet

__all__ = ["RECIPE", "DigitsConfig", "DigitsRun", "LAYERS", "INPUT_SPEC", "train_digits", "main"]

RECIPE = "digits-sia-qrelu-v1"
#: conv 1->8 3x3 pad 1 -> IF -> conv 8->16 3x3 stride 2 pad 1 -> IF -> flatten -> linear 10.
LAYERS = [
    {"name": "conv1", "type": "conv2d", "out_channels": 8, "kernel": 3, "stride": 1,
     "padding": 1},
    {"name": "conv2", "type": "conv2d", "out_channels": 16, "kernel": 3, "stride": 2,
     "padding": 1},
    {"name": "flatten", "type": "flatten"},
    {"name": "fc", "type": "linear", "out_features": 10},
]
#: Direct (analog) encoding: 8-bit pixels, raw digits values 0..16 map onto 0..255.
INPUT_SPEC = {"shape": [1, 8, 8], "bits": 8, "raw_min": 0.0, "raw_max": 16.0}


@dataclass
class DigitsConfig:
    """Hyper-parameters of the recipe (all recorded in the bundle's metadata)."""

    float_epochs: int = 40
    qat_epochs: int = 40
    batch_size: int = 32
    float_lr: float = 3e-3
    qat_lr: float = 1e-3
    weight_decay: float = 1e-4
    timesteps: int = 8
    levels: int = 8
    weight_bits: int = 8
    bias_bits: int = 16
    membrane_bits: int = 16
    percentile: float = 99.9
    seed: int = 0
    train_limit: int | None = None  # use only the first N training images (fast tests)


@dataclass
class DigitsRun:
    """What :func:`train_digits` returns: the trained net, the bundle and the accuracies."""

    net: QuantNet
    network: golden.Network
    float_accuracy: float
    qrelu_accuracy: float
    snn_accuracy: float


def _inputs(raw, spec):
    """Real-valued ANN input: the quantized pixels times the pixel step, float32."""
    pixels = golden.quantize_input(raw, spec)
    return torch.as_tensor(pixels * spec.scale, dtype=torch.float32), pixels


@torch.no_grad()
def _accuracy(net, x, y):
    net.eval()
    return int((net(x).argmax(dim=1) == y).sum()) / len(y)


def _train(net, x, y, *, epochs, lr, config, label, log, x_test, y_test):
    """Adam with cosine learning-rate decay; seeded shuffling; logs one line per epoch."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    generator = torch.Generator().manual_seed(config.seed + len(label))
    for epoch in range(epochs):
        net.train()
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(x), generator=generator)
        for first in range(0, len(x), config.batch_size):
            batch = order[first:first + config.batch_size]
            loss = F.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        schedule.step()
        log(f"[{label}] epoch {epoch + 1}/{epochs}  loss {total / len(x):.4f}  "
            f"train {_accuracy(net, x, y):.4f}  test {_accuracy(net, x_test, y_test):.4f}  "
            f"({time.perf_counter() - start:.2f} s)")


def train_digits(out, config=None, *, log=print, extra_metadata=None):
    """Run the whole recipe and write the bundle to ``out``; return a :class:`DigitsRun`.

    ``extra_metadata`` (``spikeforge train`` passes the preset, seed and epochs) is merged into
    the bundle's metadata together with ``training_seconds``; without it the metadata holds no
    timing, so the bundle is byte-identical from run to run.
    """
    config = config or DigitsConfig()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    spec = golden.InputSpec(tuple(INPUT_SPEC["shape"]), INPUT_SPEC["bits"],
                            INPUT_SPEC["raw_min"], INPUT_SPEC["raw_max"])
    split = digits_split(test_fraction=DIGITS_SPLIT["test_fraction"], seed=DIGITS_SPLIT["seed"])
    x_train, _ = _inputs(split.x_train[:config.train_limit], spec)
    y_train = torch.as_tensor(split.y_train[:config.train_limit])
    x_test, pixels_test = _inputs(split.x_test, spec)
    y_test = torch.as_tensor(split.y_test)

    net = QuantNet(spec.shape, LAYERS, input_scale=spec.scale, timesteps=config.timesteps,
                   levels=config.levels, weight_bits=config.weight_bits,
                   bias_bits=config.bias_bits, membrane_bits=config.membrane_bits)
    common = dict(config=config, log=log, x_test=x_test, y_test=y_test)
    _train(net, x_train, y_train, epochs=config.float_epochs, lr=config.float_lr,
           label="float", **common)
    float_accuracy = _accuracy(net, x_test, y_test)

    net.calibrate(x_train, percentile=config.percentile)
    net.mode = "quant"
    net.calibrate(x_train, set_lambdas=False)  # |logit| bound of the quantized net
    lambdas = ", ".join(f"{k}={float(v.detach()):.3f}" for k, v in net.lams.items())
    log(f"[calibrate] lambda {lambdas}; |logit| <= {float(net.out_bound):.2f}; "
        f"quantized test {_accuracy(net, x_test, y_test):.4f}")
    _train(net, x_train, y_train, epochs=config.qat_epochs, lr=config.qat_lr, label="qrelu",
           **common)
    qrelu_accuracy = _accuracy(net, x_test, y_test)

    metadata = {
        "recipe": RECIPE, "config": asdict(config), "seeds": {"torch": config.seed,
                                                              "numpy": config.seed},
        "timesteps": config.timesteps, "levels": config.levels,
        "layers": [dict(s) for s in LAYERS],
        "ann_float_accuracy": float_accuracy, "ann_qrelu_accuracy": qrelu_accuracy,
        "test_images": len(y_test), "torch_version": torch.__version__,
    }
    if extra_metadata is not None:
        metadata.update(extra_metadata,
                        training_seconds=round(time.perf_counter() - started, 1))
    dataset = {"name": "digits", "split": dict(DIGITS_SPLIT)}
    kwargs = dict(name="digits_snn", input_spec=INPUT_SPEC, dataset=dataset)
    network = export_bundle(net, out, metadata=metadata, **kwargs)
    result = golden.run(network, pixels_test)
    snn_accuracy = float(np.mean(result.predictions == split.y_test))
    # The SNN accuracy is only known after export; write the bundle again with it included.
    metadata["snn_accuracy"] = snn_accuracy
    metadata["output_membrane_max_abs"] = int(np.abs(result.output_membrane).max())
    network = export_bundle(net, out, metadata=metadata, **kwargs)
    log(f"[summary] ANN float {float_accuracy:.4f}  QReLU ANN {qrelu_accuracy:.4f}  "
        f"SNN (golden, T={config.timesteps}) {snn_accuracy:.4f} on {len(y_test)} test images")
    for layer in network.layers:
        if not layer.is_synaptic:
            continue
        line = (f"[summary] {layer.name}: weights {int(layer.weight.min())}.."
                f"{int(layer.weight.max())}, bias {int(layer.bias.min())}..{int(layer.bias.max())}")
        if layer.neuron.threshold is not None:
            spikes = float(result.spikes[layer.name].sum(axis=0).mean())
            line += f", threshold {layer.neuron.threshold}, {spikes:.1f} spikes/image"
        else:
            line += f", final |V| <= {metadata['output_membrane_max_abs']}"
        log(line)
    log(f"[summary] wrote {out} ({network.parameter_count()} parameters, "
        f"hash {network.content_hash})")
    return DigitsRun(net, network, float_accuracy, qrelu_accuracy, snn_accuracy)


def main(argv=None):
    """Command line: ``python -m spikeforge.train.digits --out PATH [--float-epochs N ...]``."""
    parser = argparse.ArgumentParser(prog="python -m spikeforge.train.digits",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="path of the bundle to write (.sfb)")
    defaults = DigitsConfig()
    parser.add_argument("--float-epochs", type=int, default=defaults.float_epochs)
    parser.add_argument("--qat-epochs", type=int, default=defaults.qat_epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train_digits(args.out, DigitsConfig(float_epochs=args.float_epochs,
                                        qat_epochs=args.qat_epochs, seed=args.seed))
    print(f"[summary] done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
