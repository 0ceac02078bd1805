"""The digits vertical slice: training, conversion, export and the torch integer simulation.

The PyTorch integer simulation (spikeforge.train.intsim) and the golden model are written
independently; they must agree bit for bit on every spike, membrane and current.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import spikeforge
from spikeforge import golden
from spikeforge.golden.bundle import FORMAT_NAME, FORMAT_VERSION
from spikeforge.golden.neuron import aggregate
from spikeforge.data.datasets import DIGITS_SPLIT, digits_split
from spikeforge.train.digits import DigitsConfig, train_digits
from spikeforge.train.quant import layer_quant, qrelu, theta_max

from bit_exact import assert_bit_exact

torch.set_num_threads(2)

SHIPPED = Path(spikeforge.__file__).resolve().parent / "models" / "digits_snn.sfb"


def split_of(network):
    split = network.dataset["split"]
    return digits_split(test_fraction=split["test_fraction"], seed=split["seed"])


# ----------------------------------------------------------------------------- shipped bundle

def test_shipped_bundle_is_bit_exact_and_accurate():
    network = golden.read_bundle(SHIPPED)
    assert network.dataset == {"name": "digits", "split": DIGITS_SPLIT}
    assert network.timesteps == 8 and network.membrane_bits == 16
    assert (network.input.bits, network.input.raw_min, network.input.raw_max) == (8, 0.0, 16.0)
    split = split_of(network)
    assert len(split.y_test) == 450
    x = golden.quantize_input(split.x_test, network.input)
    reference = assert_bit_exact(network, x)
    accuracy = float(np.mean(reference.predictions == split.y_test))
    assert accuracy >= 0.90
    meta = network.metadata
    assert meta["snn_accuracy"] == accuracy
    assert meta["timesteps"] == meta["levels"] == network.timesteps
    assert meta["ann_float_accuracy"] >= 0.90 and meta["ann_qrelu_accuracy"] >= 0.90
    assert {"recipe", "seeds"} <= set(meta)
    # The network actually spikes: every hidden layer fires and no threshold exceeds the cap.
    for layer in network.layers:
        if layer.neuron is not None and layer.neuron.threshold is not None:
            assert reference.spikes[layer.name].sum() > 0, layer.name
            assert layer.neuron.threshold <= theta_max(network.membrane_bits)


# ----------------------------------------------------------------------------- the recipe

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "quick.sfb"
    config = DigitsConfig(float_epochs=3, qat_epochs=2, train_limit=600)
    run = train_digits(path, config, log=lambda line: None)
    return path, run


def test_recipe_bundle_is_bit_exact(quick_run):
    path, run = quick_run
    network = golden.read_bundle(path)
    assert network.content_hash == run.network.content_hash
    assert network.metadata["recipe"] and network.metadata["config"]["qat_epochs"] == 2
    x = golden.quantize_input(split_of(network).x_test, network.input)
    reference = assert_bit_exact(network, x)
    assert network.metadata["snn_accuracy"] == float(np.mean(
        reference.predictions == split_of(network).y_test))


def test_exported_integers_are_the_trained_ones(quick_run):
    path, run = quick_run
    network = golden.read_bundle(path)
    with torch.no_grad():
        quant = run.net.quant_layers()
    synaptic = [layer for layer in network.layers if layer.is_synaptic]
    assert [layer.name for layer in synaptic] == list(quant)
    for layer in synaptic:
        q = quant[layer.name]
        # The values the quantized forward pass used, divided by their step, are the bundle's.
        weights = torch.floor(q.weight_q / q.step + 0.5).to(torch.int64).numpy()
        np.testing.assert_array_equal(layer.weight, weights)
        assert np.abs(weights).max() <= 127
        biases = torch.floor(q.bias_q / q.unit + 0.5).to(torch.int64).numpy()
        np.testing.assert_array_equal(layer.bias, biases)
        if layer.neuron.threshold is None:
            assert q.lam is None
        else:
            assert layer.neuron.threshold == int(torch.floor(q.lam / q.unit + 0.5))
            assert (layer.neuron.reset, layer.neuron.v_init) == ("subtract", "half")


def test_first_layer_spike_counts_match_the_quantized_relu(quick_run):
    """The conversion claim: with a constant current, spike count == quantized ReLU level."""
    path, run = quick_run
    network = golden.read_bundle(path)
    split = split_of(network)
    pixels = golden.quantize_input(split.x_test[:100], network.input)
    first = network.layers[0]
    counts = golden.run(network, pixels, trace=True).traces[first.name].spikes.sum(axis=0)
    net = run.net
    net.eval()
    with torch.no_grad():
        # The trained quantized forward pass itself, not a re-implementation of it.
        x = torch.as_tensor(pixels * network.input.scale, dtype=torch.float32)
        activation = net(x, record=True)[1][0]
        lam = net.quant_layers()[first.name].lam
        levels = activation / (lam / net.levels)
    levels = torch.floor(levels + 0.5).to(torch.int64).numpy()
    # Float rounding may move a value sitting exactly on a level boundary; nothing else may.
    assert np.mean(levels == counts) >= 0.999
    assert counts.max() == network.timesteps and counts.min() == 0


# ----------------------------------------------------------------------------- quantization

def test_layer_quant_scaling_rules():
    torch.manual_seed(1)
    weight = torch.randn(4, 3, 3, 3)
    bias = torch.randn(4) * 0.1
    # Weight-limited: the largest weight maps onto qmax, the threshold is small.
    q = layer_quant(weight, bias, 0.5, torch.tensor(2.0), lam=torch.tensor(2.0), weight_bits=6,
                    bias_bits=12, membrane_bits=16)
    assert float(q.unit) == pytest.approx(float(weight.abs().max()) * 0.5 / 31)
    assert int(q.weight_int.abs().max()) == 31
    assert int(q.threshold) == round(2.0 / float(q.unit))
    # Threshold-limited: a large lambda caps the threshold at 2**(B-2).
    q = layer_quant(weight, bias, 0.5, torch.tensor(1e4), lam=torch.tensor(1e4), weight_bits=6,
                    bias_bits=12, membrane_bits=10)
    assert int(q.threshold) == 256
    assert int(q.weight_int.abs().max()) < 31
    assert torch.all(q.bias_int.abs() <= 2048)


def test_ternary_weights_keep_the_weights_above_twn_threshold():
    # 2-bit weights are -1, 0, 1: every weight with |W| >= 0.7 mean|W| (TWN's threshold)
    # becomes +-1 with its sign, the others 0; with max|W| as the step instead, only the
    # weights above half the largest would survive.
    torch.manual_seed(2)
    weight = torch.randn(8, 4, 3, 3)
    q = layer_quant(weight, None, 0.5, torch.tensor(1e-6), lam=torch.tensor(1e-6),
                    weight_bits=2, bias_bits=12, membrane_bits=16)
    cut = 0.7 * float(weight.abs().mean())
    expected = torch.sign(weight) * (weight.abs() >= cut)
    assert torch.equal(q.weight_int, expected)
    assert float(q.step) == pytest.approx(2 * cut)
    kept = int(expected.abs().sum())
    assert kept > 2 * int((weight.abs() >= weight.abs().max() / 2).sum())
    # Wider weights keep the max|W| step.
    q = layer_quant(weight, None, 0.5, torch.tensor(1e-6), lam=torch.tensor(1e-6),
                    weight_bits=3, bias_bits=12, membrane_bits=16)
    assert float(q.step) == pytest.approx(float(weight.abs().max()) / 3)


@pytest.mark.parametrize("theta", [16, 64, 16384])
def test_if_neuron_over_t_steps_is_the_quantized_relu(theta):
    """IF (subtract reset, V0 = theta >> 1) with constant current I for T = L steps fires
    floor(T*I/theta + 1/2) clipped to 0..T: the quantized ReLU's level (theta a power of two,
    so the float division is exact)."""
    timesteps = 8
    currents = np.arange(-theta, 2 * theta + 1, max(1, theta // 64), dtype=np.int64)
    neuron = golden.Neuron(threshold=theta, reset="subtract", v_init="half")
    v = np.full(currents.shape, neuron.initial_membrane, dtype=np.int64)
    counts = np.zeros(currents.shape, dtype=np.int64)
    for _ in range(timesteps):
        v, fired = aggregate(v, currents, neuron, 32)
        counts += fired
    x = torch.as_tensor(currents, dtype=torch.float64)
    levels = qrelu(x, torch.tensor(float(theta), dtype=torch.float64), timesteps) * timesteps
    np.testing.assert_array_equal(counts, (levels / theta).numpy().astype(np.int64))


# ----------------------------------------------------------------------------- intsim coverage

def _layer(name, kind, out_shape, **extra):
    return {"name": name, "type": kind, "output": extra.pop("output", "spikes"),
            "out_shape": list(out_shape), **extra}


def _synthetic_network(tmp_path, layers, arrays, membrane_bits=10, timesteps=6):
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": "synthetic",
                "timesteps": timesteps, "membrane_bits": membrane_bits,
                "input": {"shape": [2, 6, 6], "bits": 4, "raw_min": 0.0, "raw_max": 15.0},
                "layers": layers}
    return golden.write_bundle(tmp_path / "synthetic.sfb", manifest, arrays)


def test_intsim_matches_golden_on_every_supported_layer_kind(tmp_path):
    rng = np.random.default_rng(7)
    weights = {"c1.weight": rng.integers(-8, 8, (4, 2, 3, 3)),
               "c1.bias": rng.integers(-20, 20, 4),
               "c2.weight": rng.integers(-2, 4, (3, 4, 2, 2)),
               "fc.weight": rng.integers(-30, 30, (5, 12)), "fc.bias": rng.integers(-9, 9, 5)}
    arrays = {k: v.astype(np.int32 if k.endswith("bias") else np.int8)
              for k, v in weights.items()}
    layers = [
        _layer("c1", "conv2d", [4, 6, 6], out_channels=4, kernel=[3, 3], stride=[1, 1],
               padding=[1, 1], weight_bits=4, bias_bits=6,
               neuron={"threshold": 60, "reset": "zero", "v_init": "half",
                       "leak": {"kind": "shift", "shift": 2}}),
        _layer("avg", "avgpool2d", [4, 3, 3], kernel=[2, 2],
               neuron={"threshold": 2, "reset": "subtract", "leak": {"kind": "none"}}),
        _layer("c2", "conv2d", [3, 2, 2], out_channels=3, kernel=[2, 2], stride=[1, 1],
               padding=[0, 0], weight_bits=3,
               neuron={"threshold": 3, "reset": "subtract", "v_init": "zero",
                       "leak": {"kind": "mul", "factor": 3, "frac_bits": 2}}),
        _layer("pool", "maxpool2d", [3, 2, 2], kernel=[1, 1]),
        _layer("flat", "flatten", [12]),
        _layer("fc", "linear", [5], output="membrane", out_features=5, weight_bits=6,
               bias_bits=5, neuron={"leak": {"kind": "shift", "shift": 3}}),
    ]
    network = _synthetic_network(tmp_path, layers, arrays)
    x = rng.integers(0, 16, (40, 2, 6, 6))
    reference = assert_bit_exact(network, x)
    for name in ("c1", "avg", "c2"):   # every neuron layer fires, or the test proves little
        assert reference.spikes[name].sum() > 0, name
    # The 10-bit membranes saturate (c1 currents reach thousands), so saturation is compared.
    saturated = [name for name, trace in reference.traces.items() if trace.membrane is not None
                 and (trace.membrane.max() == 511 or trace.membrane.min() == -512)]
    assert saturated


def test_intsim_runs_conv3d_exactly_like_golden(tmp_path):
    """conv3d (once unsupported by intsim) now simulates bit-exactly; HSI models use it."""
    rng = np.random.default_rng(3)
    arrays = {"c3.weight": rng.integers(-3, 3, (2, 1, 1, 1, 1)).astype(np.int8),
              "fc.weight": rng.integers(-3, 3, (3, 144)).astype(np.int8)}
    layers = [_layer("c3", "conv3d", [2, 2, 6, 6], out_channels=2, kernel=[1, 1, 1],
                     stride=[1, 1, 1], padding=[0, 0, 0], weight_bits=3,
                     neuron={"threshold": 4, "reset": "subtract"}),
              _layer("flat", "flatten", [144]),
              _layer("fc", "linear", [3], output="membrane", out_features=3, weight_bits=3,
                     neuron={})]
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": "cube",
                "timesteps": 2, "membrane_bits": 10,
                "input": {"shape": [1, 2, 6, 6], "bits": 4, "raw_min": 0.0, "raw_max": 15.0},
                "layers": layers}
    network = golden.write_bundle(tmp_path / "cube.sfb", manifest, arrays)
    reference = assert_bit_exact(network, rng.integers(0, 16, (8, 1, 2, 6, 6)))
    assert reference.spikes["c3"].sum() > 0
