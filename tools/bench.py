"""Speed of the golden model next to snnTorch on the same integer conv SNN (``spikeforge bench``).

The network (MNIST-sized, direct-encoded, IF neurons, subtract reset, ``v_init`` zero)::

    input 1x28x28 (8-bit) -> conv 1->16 3x3 pad 1 -> IF -> maxpool 2
    -> conv 16->32 3x3 pad 1 -> IF -> maxpool 2 -> flatten -> linear 1568->10 (membrane)

Weights are random 8-bit integers; each threshold is calibrated on the first images so that
every spiking layer fires at about :data:`TARGET_RATE` per neuron and timestep.

How snnTorch is made to compute exactly the same integers (float32 is exact: every current and
membrane stays below 2**24, and the bench checks the result rather than assuming it):

* ``snn.Leaky(beta=1.0)`` is an IF neuron with ``reset_mechanism="subtract"``. It keeps
  snnTorch's default ``reset_delay=True``: the threshold is subtracted at the start of the
  next step, so snnTorch's membrane is the contract's ``V`` *before* reset and its spikes
  are exactly the contract's. ``reset_delay=False`` does not match: when the post-reset
  membrane is still ``>= theta`` (a neuron at ``V >= 2 theta``) it decides the next spike on
  ``V - theta`` instead of ``V`` (snntorch 1.0.0, ``Leaky.forward``), so a falling current
  can suppress a spike the contract fires.
* snnTorch fires when ``mem - threshold > 0``; the contract fires when ``V >= theta``. The
  neurons therefore get ``spike_grad=fire_at_threshold`` (``mem - threshold >= 0``), the hook
  snnTorch offers for its spike function; the threshold and the reset stay the same value.
* Direct encoding: the first convolution runs once per batch and feeds the same current
  every step, as the golden model does (snnTorch's tutorials recompute it each step; that
  would only make snnTorch slower).
* The output layer is ``snn.Leaky(beta=1.0, reset_mechanism="none")``: snnTorch's own
  integrator without reset, so the membrane it returns is the sum of the linear outputs over
  time, like the contract's non-spiking output (its spike output is ignored). Summing the
  linear output by hand would give the same numbers; this keeps the model in library terms.

Both engines run on the same integer images with 2 threads each (torch and the BLAS behind
NumPy); repeats alternate between the engines and the median is reported.
"""

import statistics
import time

import numpy as np

from spikeforge.golden import network_from_parts, quantize_input
from spikeforge.golden import run as golden_run

from ..data.datasets import DatasetError, default_data_dir, mnist_test
from .options import add_data_dir, add_json, data_dir, positive_int, printed

__all__ = [
    "HELP",
    "DESCRIPTION",
    "add_arguments",
    "run",
    "TARGET_RATE",
    "BenchUnavailable",
    "build_network",
    "bench_images",
    "fire_at_threshold",
    "SnnTorchNet",
    "run_benchmark",
]

TARGET_RATE = 0.15
THREADS = 2
_MEMBRANE_BITS = 24
_WEIGHT_BITS = 8
_CALIBRATION_IMAGES = 64


class BenchUnavailable(RuntimeError):
    """snnTorch (the ``bench`` extra) is not installed."""


def _manifest(timesteps, thresholds):
    neuron = [{"threshold": int(t), "reset": "subtract", "leak": {"kind": "none"},
               "v_init": "zero"} for t in thresholds]
    conv = {"type": "conv2d", "output": "spikes", "kernel": [3, 3], "stride": [1, 1],
            "padding": [1, 1], "weight_bits": _WEIGHT_BITS}
    return {
        "format": "spikeforge-bundle", "format_version": 1, "name": "bench_conv_snn",
        "timesteps": timesteps, "membrane_bits": _MEMBRANE_BITS,
        "input": {"shape": [1, 28, 28], "bits": 8, "raw_min": 0.0, "raw_max": 255.0},
        "layers": [
            {**conv, "name": "conv1", "out_channels": 16, "out_shape": [16, 28, 28],
             "neuron": neuron[0]},
            {"name": "pool1", "type": "maxpool2d", "output": "spikes", "kernel": [2, 2],
             "out_shape": [16, 14, 14]},
            {**conv, "name": "conv2", "out_channels": 32, "out_shape": [32, 14, 14],
             "neuron": neuron[1]},
            {"name": "pool2", "type": "maxpool2d", "output": "spikes", "kernel": [2, 2],
             "out_shape": [32, 7, 7]},
            {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [1568]},
            {"name": "fc", "type": "linear", "output": "membrane", "out_features": 10,
             "weight_bits": _WEIGHT_BITS, "out_shape": [10], "neuron": {}},
        ],
        "dataset": {"name": "mnist"}, "metadata": {"purpose": "benchmark, random weights"},
    }


def _rate(network, x, layer):
    result = golden_run(network, x)
    neurons = network.layer(layer).neurons
    return result.spikes[layer].sum() / (neurons * network.timesteps * x.shape[0])


def build_network(x, timesteps=8, seed=0):
    """The benchmark :class:`Network` with random weights and thresholds calibrated on ``x``.

    Each threshold is the largest one at which its layer still fires at least
    :data:`TARGET_RATE` on ``x`` (a binary search; earlier layers are calibrated first).
    """
    rng = np.random.default_rng(seed)
    low, high = -(1 << (_WEIGHT_BITS - 1)), (1 << (_WEIGHT_BITS - 1)) - 1
    arrays = {"conv1.weight": rng.integers(low, high + 1, (16, 1, 3, 3), dtype=np.int8),
              "conv2.weight": rng.integers(low, high + 1, (32, 16, 3, 3), dtype=np.int8),
              "fc.weight": rng.integers(low, high + 1, (10, 1568), dtype=np.int8)}
    top = (1 << (_MEMBRANE_BITS - 1)) - 1
    thresholds = [top, top]
    for index, layer in enumerate(("conv1", "conv2")):
        lo, hi = 1, top  # the rate falls as the threshold grows
        while lo < hi:
            mid = (lo + hi + 1) // 2
            thresholds[index] = mid
            network = network_from_parts(_manifest(timesteps, thresholds), arrays)
            if _rate(network, x, layer) >= TARGET_RATE:
                lo = mid
            else:
                hi = mid - 1
        thresholds[index] = lo
    return network_from_parts(_manifest(timesteps, thresholds), arrays)


def bench_images(count, data_dir=None, seed=0):
    """``count`` integer images (N, 1, 28, 28) and where they came from.

    The first MNIST test images when the dataset folder is found, otherwise sparse random
    8-bit images (80 % zeros, like MNIST's background).
    """
    spec = network_from_parts(_manifest(1, [1, 1]), {
        "conv1.weight": np.zeros((16, 1, 3, 3), np.int8),
        "conv2.weight": np.zeros((32, 16, 3, 3), np.int8),
        "fc.weight": np.zeros((10, 1568), np.int8)}).input
    directory = data_dir if data_dir is not None else default_data_dir()
    if directory is not None:
        try:
            x, _ = mnist_test(directory)
        except DatasetError:
            x = None
        if x is not None and count <= x.shape[0]:
            return quantize_input(x[:count], spec), f"MNIST t10k[:{count}]"
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (count, 1, 28, 28)) * (rng.random((count, 1, 28, 28)) < 0.2)
    return x.astype(np.int64), f"{count} random sparse 8-bit images"


def fire_at_threshold(mem_shift):
    """Spike function for snnTorch neurons: 1 where ``mem - threshold >= 0`` (``V >= theta``)."""
    return (mem_shift >= 0).to(mem_shift.dtype)


def _import_snntorch():
    try:
        import snntorch
        import torch
    except ImportError as error:
        raise BenchUnavailable(
            f"snnTorch is not installed ({error}); install the benchmark extra with "
            f"`pip install spikeforge[bench]`") from None
    return snntorch, torch


def SnnTorchNet(network):
    """A ``torch.nn.Module`` running ``network`` (the benchmark topology) with snnTorch.

    Calling it on a float32 batch (N, 1, 28, 28) returns ``(output membrane (N, 10), spike
    counts {"conv1": int, "conv2": int})`` after ``network.timesteps`` steps.
    """
    snn, torch = _import_snntorch()
    nn = torch.nn

    def weight(name):
        return torch.from_numpy(network.layer(name).weight.astype(np.float32))

    def leaky(name):
        return snn.Leaky(beta=1.0, threshold=float(network.layer(name).neuron.threshold),
                         spike_grad=fire_at_threshold, reset_mechanism="subtract",
                         reset_delay=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
            self.fc = nn.Linear(1568, 10, bias=False)
            with torch.no_grad():
                self.conv1.weight.copy_(weight("conv1"))
                self.conv2.weight.copy_(weight("conv2"))
                self.fc.weight.copy_(weight("fc"))
            self.lif1, self.lif2 = leaky("conv1"), leaky("conv2")
            self.out = snn.Leaky(beta=1.0, reset_mechanism="none")
            self.pool = nn.MaxPool2d(2)
            self.timesteps = network.timesteps

        def forward(self, x):
            mem1, mem2, mem3 = self.lif1.reset_mem(), self.lif2.reset_mem(), self.out.reset_mem()
            spikes1 = spikes2 = 0.0
            current1 = self.conv1(x)  # direct encoding: the same current every step
            for _ in range(self.timesteps):
                spk1, mem1 = self.lif1(current1, mem1)
                spk2, mem2 = self.lif2(self.conv2(self.pool(spk1)), mem2)
                _, mem3 = self.out(self.fc(self.pool(spk2).flatten(1)), mem3)
                spikes1 = spikes1 + spk1.sum()
                spikes2 = spikes2 + spk2.sum()
            return mem3, {"conv1": int(spikes1), "conv2": int(spikes2)}

    return Net().eval()


def _timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def run_benchmark(batch=256, timesteps=8, repeats=5, data_dir=None, seed=0):
    """Time both engines on one batch and compare their outputs; return a JSON-ready dict.

    Raises :class:`BenchUnavailable` without snnTorch and ``ValueError`` for a bad argument.
    """
    for label, value, least in (("batch", batch, 1), ("timesteps", timesteps, 1),
                                ("repeats", repeats, 1)):
        if value < least:
            raise ValueError(f"--{label} must be at least {least}, not {value}")
    _, torch = _import_snntorch()
    from threadpoolctl import threadpool_limits

    x, source = bench_images(batch, data_dir, seed)
    network = build_network(x[:_CALIBRATION_IMAGES], timesteps, seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with threadpool_limits(THREADS), torch.inference_mode():
            model = SnnTorchNet(network)
            x_float = torch.from_numpy(x.astype(np.float32))
            golden = golden_run(network, x)            # warm-up runs, also the outputs compared
            membrane, spikes = model(x_float)
            times = {"golden": [], "snntorch": []}
            for _ in range(repeats):
                times["golden"].append(_timed(lambda: golden_run(network, x))[0])
                times["snntorch"].append(_timed(lambda: model(x_float))[0])
    finally:
        torch.set_num_threads(previous_threads)

    torch_membrane = membrane.numpy()
    torch_predictions = np.argmax(torch_membrane, axis=1)
    rates = {name: batch / statistics.median(values) for name, values in times.items()}
    golden_spikes = {name: int(v.sum()) for name, v in golden.spikes.items()}
    return {
        "network": network.name, "input": source, "batch": batch, "timesteps": timesteps,
        "repeats": repeats, "threads": THREADS,
        "thresholds": {name: network.layer(name).neuron.threshold for name in golden_spikes},
        "spike_rate": {name: count / (network.layer(name).neurons * timesteps * batch)
                       for name, count in golden_spikes.items()},
        "images_per_s": rates,
        "seconds": times,
        "ratio_golden_over_snntorch": rates["golden"] / rates["snntorch"],
        "predictions_agree": int((golden.predictions == torch_predictions).sum()),
        "membranes_equal": bool(np.array_equal(golden.output_membrane,
                                               torch_membrane.astype(np.int64))
                                and np.array_equal(torch_membrane,
                                                   np.round(torch_membrane))),
        "spikes": {"golden": golden_spikes, "snntorch": spikes},
    }


def bench_lines(result):
    """Human-readable table of :func:`run_benchmark`'s result."""
    from .report import table

    rates = result["images_per_s"]
    rows = [["golden (NumPy)", f"{rates['golden']:.1f}",
             f"{result['ratio_golden_over_snntorch']:.3f}"],
            ["snnTorch", f"{rates['snntorch']:.1f}", "1.000"]]
    agree = result["predictions_agree"]
    lines = [f"network   {result['network']}: conv16-pool-conv32-pool-fc10, T="
             f"{result['timesteps']}, batch {result['batch']}, {result['threads']} threads, "
             f"median of {result['repeats']}",
             f"input     {result['input']}",
             "spikes    " + ", ".join(f"{name} {rate * 100:.1f} %/neuron/step" for name, rate
                                      in result["spike_rate"].items()), ""]
    lines += table(["engine", "images/s", "golden/snnTorch"], rows, align="<>>")
    same = result["spikes"]["golden"] == result["spikes"]["snntorch"]
    lines += ["", f"predictions agree on {agree}/{result['batch']} images; output membranes "
              f"{'identical' if result['membranes_equal'] else 'DIFFER'}; spike counts "
              f"{'identical' if same else 'DIFFER'}"]
    return lines


# ------------------------------------------------------------------------- the command

HELP = "golden model vs snnTorch on a conv SNN, images/s"
DESCRIPTION = ("Time the golden model and snnTorch on the same integer conv SNN (1x28x28 -> "
               "conv16 -> pool -> conv32 -> pool -> fc10, IF neurons) and check that both "
               "predict the same. Needs `pip install spikeforge[bench]`.")


def add_arguments(parser):
    parser.add_argument("--batch", type=positive_int, default=256, help="images (default 256)")
    parser.add_argument("--timesteps", type=positive_int, default=8, help="T (default 8)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed runs per engine, interleaved; the median counts (default 5)")
    add_data_dir(parser, "random images when it holds no MNIST")
    add_json(parser)


def run(args):
    folder = None if args.data_dir is None else data_dir(args.data_dir)
    result = run_benchmark(batch=args.batch, timesteps=args.timesteps, repeats=args.repeats,
                           data_dir=folder)
    return printed(args, result, bench_lines)
