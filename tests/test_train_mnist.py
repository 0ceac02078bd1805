"""The MNIST presets: shipped bundles, quick training runs, and the residual add's export.

The PyTorch integer simulation (spikeforge.train.intsim) and the golden model are written
independently; on every shipped MNIST bundle they must agree on every spike, membrane and
current of every layer at every timestep. The samples are the first 1000 t10k images for the
VGG and the first 400 for the (twice as costly per image) ResNet, in chunks of 100 so the traces
stay small: about 13 s and 15 s on a shared 2-core VM, which keeps this file near 50 s with
the two quick training runs.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import spikeforge
from spikeforge import golden
from spikeforge.tools.cli import main
from spikeforge.data.datasets import DatasetError, default_data_dir, mnist_test
from spikeforge.data.evaluate import evaluate
from spikeforge.train.convert import network_parts
from spikeforge.train.qnet import QuantNet

from bit_exact import assert_bit_exact

torch.set_num_threads(2)

MODELS = Path(spikeforge.__file__).resolve().parent / "models"
SHIPPED = {"mnist-vgg": MODELS / "mnist_vgg.sfb", "mnist-resnet": MODELS / "mnist_resnet.sfb"}
SAMPLE, CHUNK = {"mnist-vgg": 1000, "mnist-resnet": 400}, 100


def _mnist():
    try:
        return mnist_test(default_data_dir())
    except DatasetError as error:  # the data folder lives outside the repository
        pytest.skip(f"MNIST is not available: {error}")


# ----------------------------------------------------------------------------- shipped bundles

@pytest.mark.parametrize("preset", sorted(SHIPPED))
def test_shipped_mnist_bundle_is_bit_exact(preset):
    network = golden.read_bundle(SHIPPED[preset])
    raw, labels = _mnist()
    sample = SAMPLE[preset]
    raw, labels = raw[:sample], labels[:sample]
    x = golden.quantize_input(raw, network.input)
    predictions = []
    for first in range(0, sample, CHUNK):
        reference = assert_bit_exact(network, x[first:first + CHUNK])
        predictions.append(reference.predictions)
        for name, count in reference.spikes.items():   # every spiking layer fires
            assert count.sum() > 0, name
    correct = int((np.concatenate(predictions) == labels).sum())
    # The engine of `spikeforge golden` reports the same accuracy on the same sample.
    evaluation = evaluate(network, raw, labels, batch_size=128)
    assert evaluation.correct == correct and evaluation.images == sample
    assert correct / sample >= 0.98


@pytest.mark.parametrize("preset", sorted(SHIPPED))
def test_shipped_mnist_bundle_meets_the_contract_of_its_preset(preset):
    network = golden.read_bundle(SHIPPED[preset])
    assert (network.timesteps, network.membrane_bits) == (8, 16)
    assert (network.input.bits, network.input.raw_min, network.input.raw_max) == (8, 0.0, 255.0)
    assert network.input.shape == (1, 28, 28)
    for layer in network.layers:
        if layer.is_synaptic:
            assert layer.weight_bits <= 4 and np.abs(layer.weight).max() <= 7, layer.name
        assert layer.out_shape[0] <= 64 or layer.type in ("linear", "flatten"), layer.name
        if layer.type == "linear":
            assert layer.out_shape[0] <= 64 and layer.weight.shape[1] <= 64 * 4, layer.name
    meta = network.metadata
    assert meta["preset"] == preset and meta["seed"] == 0
    assert meta["test_images"] == 10000 and meta["validation_images"] == 5000
    assert meta["training_seconds"] < 30 * 60
    assert {"ann_float_accuracy", "ann_qrelu_accuracy", "snn_accuracy", "torch_version",
            "epochs"} <= set(meta)
    assert meta["snn_accuracy"] >= 0.99 and meta["ann_float_accuracy"] >= 0.99
    assert meta["ann_float_accuracy"] - meta["snn_accuracy"] <= 0.01   # the target
    assert meta["snn_calibration"]["images"] == 500
    assert meta["snn_accuracy_uncalibrated"] <= meta["snn_accuracy"]
    assert network.dataset["name"] == "mnist"


def test_shipped_resnet_has_residual_adds_of_currents():
    network = golden.read_bundle(SHIPPED["mnist-resnet"])
    adds = [layer for layer in network.layers if layer.type == "add"]
    assert len(adds) == 8   # 4 stages x 2 basic blocks
    for add in adds:
        kinds = [network.layer(name).output for name in add.inputs]
        assert kinds[0] == "current"       # the block's second conv
        assert kinds[1] in ("current", "spikes")  # projection or identity shortcut
        if kinds[1] == "spikes":
            assert add.scales[1] >= 1
    convs = [layer for layer in network.layers if layer.type == "conv2d"]
    assert sum(layer.output == "current" and layer.kernel == (1, 1) for layer in convs) == 3


# ----------------------------------------------------------------------------- quick runs

@pytest.mark.parametrize("preset", ["mnist-vgg", "mnist-resnet"])
def test_quick_training_run_writes_an_exact_bundle(preset, tmp_path, capsys):
    raw, labels = _mnist()
    out = tmp_path / f"{preset}.sfb"
    status = main(["train", preset, "--out", str(out), "--epochs", "1", "--train-limit", "256",
                   "--data-dir", str(default_data_dir())])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "[float] epoch 1/1" in captured.err and "val" in captured.err
    assert captured.out.startswith(f"wrote {out}")
    network = golden.read_bundle(out)
    meta = network.metadata
    assert meta["preset"] == preset and meta["epochs"] == {"float": 1, "qat": 1}
    assert meta["training_images"] == 256 and meta["test_images"] == 256
    x = golden.quantize_input(raw[:64], network.input)
    assert_bit_exact(network, x)
    recorded = evaluate(network, raw[:256], labels[:256]).accuracy
    assert meta["snn_accuracy"] == recorded


# ----------------------------------------------------------------------------- the add layer

def _residual_net():
    """Input -> c0 (spikes); add(a: conv of the input, p: 1x1 conv of c0, c0 itself) -> fc."""
    specs = [
        {"name": "c0", "type": "conv2d", "out_channels": 3, "kernel": 3, "stride": 1,
         "padding": 1},
        {"name": "a", "type": "conv2d", "out_channels": 3, "kernel": 3, "stride": 1,
         "padding": 1, "inputs": ["input"], "output": "current"},
        {"name": "p", "type": "conv2d", "out_channels": 3, "kernel": 1, "stride": 1,
         "padding": 0, "inputs": ["c0"], "output": "current"},
        {"name": "res", "type": "add", "inputs": ["a", "p", "c0"]},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 4},
    ]
    torch.manual_seed(5)
    net = QuantNet((1, 6, 6), specs, input_scale=1.0, timesteps=6, levels=6, weight_bits=4)
    return net


def test_add_layer_export_is_exact(tmp_path):
    """Over T = L steps the add's integer current sums to exactly L * (the quantized ANN's
    pre-activation of the add) / u: the residual scale and the shared unit lose nothing."""
    net = _residual_net()
    rng = np.random.default_rng(2)
    spec = golden.InputSpec((1, 6, 6), 4, 0.0, 15.0)
    pixels = rng.integers(0, 16, (64, 1, 6, 6))
    x = torch.as_tensor(pixels * spec.scale, dtype=torch.float64)
    net = net.double()
    net.calibrate(x, percentile=90.0)
    net.mode = "quant"
    net.calibrate(x, set_lambdas=False)
    manifest, arrays = network_parts(net, name="residual", input_spec={
        "shape": [1, 6, 6], "bits": 4, "raw_min": 0.0, "raw_max": 15.0})
    network = golden.write_bundle(tmp_path / "residual.sfb", manifest, arrays)
    reference = assert_bit_exact(network, pixels)

    with torch.no_grad():
        quant = net.quant_layers()
        h0 = net(x, record=True)[1][0]      # c0's quantized-ReLU output (levels * lam / L)
        qa, qp, qres = quant["a"], quant["p"], quant["res"]
        z = (F.conv2d(x, qa.weight_q, qa.bias_q, padding=1) + F.conv2d(h0, qp.weight_q, qp.bias_q)
             + h0 * qres["factors"][2])
        per_image = (z * net.levels / qres["unit"]).numpy()
    expected = np.floor(per_image + 0.5).astype(np.int64)
    assert np.abs(per_image - expected).max() < 1e-6     # the ANN's value is on the integer grid
    summed = reference.traces["res"].current.sum(axis=0)
    np.testing.assert_array_equal(summed, expected)
    add = network.layer("res")
    assert add.scales[:2] == (1, 1) and add.scales[2] == int(
        np.floor(float(quant["c0"].lam / qres["unit"]) + 0.5))
    assert reference.spikes["res"].sum() > 0 and len(set(np.unique(summed))) > 10
    # c0 is direct-encoded: its spike counts are the quantized ReLU's levels.
    counts = reference.traces["c0"].spikes.sum(axis=0)
    levels = np.floor((h0 / (quant["c0"].lam / net.levels)).numpy() + 0.5)
    np.testing.assert_array_equal(counts, levels)


def test_avgpool_spike_count_is_the_rounded_window_mean(tmp_path):
    """The avg-pool neuron (threshold K, subtract, V0 = K >> 1) fires round_half_up(S / K) times
    for S input spikes in its window, whatever their timing."""
    from spikeforge.golden.neuron import aggregate
    from spikeforge.golden.synapse import avgpool2d_current
    from spikeforge.train.quant import qavgpool

    rng = np.random.default_rng(4)
    for kernel in (2, 3):
        spikes = rng.random((10, 40, 2, 6, 6)) < rng.random((1, 40, 2, 6, 6))
        layer = golden.Layer(name="pool", type="avgpool2d", inputs=("c",), output="spikes",
                             in_shape=(2, 6, 6), out_shape=(2, 6 // kernel, 6 // kernel),
                             kernel=(kernel, kernel),
                             stride=(kernel, kernel),
                             neuron=golden.Neuron(threshold=kernel * kernel, reset="subtract",
                                                  v_init="half"))
        v = np.full((40, *layer.out_shape), (kernel * kernel) >> 1, dtype=np.int64)
        fired_total = np.zeros_like(v)
        for t in range(10):
            current = avgpool2d_current(spikes[t].astype(np.uint8), layer).astype(np.int64)
            v, fired = aggregate(v, current, layer.neuron, 16)
            fired_total += fired
        window = spikes.sum(axis=0).reshape(40, 2, 6 // kernel, kernel, 6 // kernel, kernel)
        total = window.sum(axis=(3, 5))
        count = kernel * kernel
        np.testing.assert_array_equal(fired_total, (total + count // 2) // count)
        # The quantized forward pass's avg-pool predicts the same count from the levels.
        lam = torch.tensor(2.0, dtype=torch.float64)
        levels = torch.as_tensor(spikes.sum(axis=0), dtype=torch.float64) * lam / 10
        out = qavgpool(levels, lam, 10, (kernel, kernel), (kernel, kernel))
        np.testing.assert_array_equal(np.floor(out.numpy() / 0.2 + 0.5), fired_total)


def test_intsim_matches_golden_on_add_with_every_input_kind(tmp_path):
    """add over an avg-pool current, a strided conv current and a max-pool spike train, with
    negative and positive scales, a leak and reset to zero."""
    from spikeforge.golden.bundle import FORMAT_NAME, FORMAT_VERSION

    rng = np.random.default_rng(11)
    arrays = {"c1.weight": rng.integers(-8, 8, (3, 2, 3, 3)).astype(np.int8),
              "c1.bias": rng.integers(-9, 9, 3).astype(np.int32),
              "c2.weight": rng.integers(-4, 4, (3, 3, 2, 2)).astype(np.int8),
              "fc.weight": rng.integers(-20, 20, (4, 27)).astype(np.int8)}
    conv = {"type": "conv2d", "output": "spikes", "weight_bits": 4}
    layers = [
        {**conv, "name": "c1", "out_shape": [3, 6, 6], "out_channels": 3, "kernel": [3, 3],
         "stride": [1, 1], "padding": [1, 1], "bias_bits": 5,
         "neuron": {"threshold": 40, "reset": "subtract", "v_init": "half"}},
        {"name": "avg", "type": "avgpool2d", "output": "current", "out_shape": [3, 3, 3],
         "kernel": [2, 2]},
        {**conv, "name": "c2", "inputs": ["c1"], "output": "current", "out_shape": [3, 3, 3],
         "out_channels": 3, "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0],
         "weight_bits": 3},
        {"name": "mp", "type": "maxpool2d", "inputs": ["c1"], "output": "spikes",
         "out_shape": [3, 3, 3], "kernel": [2, 2]},
        {"name": "res", "type": "add", "inputs": ["avg", "c2", "mp"], "scales": [3, -2, 5],
         "output": "spikes", "out_shape": [3, 3, 3],
         "neuron": {"threshold": 6, "reset": "zero", "leak": {"kind": "shift", "shift": 1}}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [27]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_shape": [4],
         "out_features": 4, "weight_bits": 6, "neuron": {}},
    ]
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": "adds",
                "timesteps": 5, "membrane_bits": 12,
                "input": {"shape": [2, 6, 6], "bits": 4, "raw_min": 0.0, "raw_max": 15.0},
                "layers": layers}
    network = golden.write_bundle(tmp_path / "adds.sfb", manifest, arrays)
    reference = assert_bit_exact(network, rng.integers(0, 16, (30, 2, 6, 6)))
    current = reference.traces["res"].current
    assert current.min() < 0 < current.max() and reference.spikes["res"].sum() > 0


def _quantized_residual(tmp_path):
    net = _residual_net().double()
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 16, (64, 1, 6, 6))
    x = torch.as_tensor(pixels, dtype=torch.float64)
    net.calibrate(x, percentile=90.0)
    net.mode = "quant"
    net.calibrate(x, set_lambdas=False)
    manifest, arrays = network_parts(net, name="residual", input_spec={
        "shape": [1, 6, 6], "bits": 4, "raw_min": 0.0, "raw_max": 15.0})
    return net, golden.write_bundle(tmp_path / "residual.sfb", manifest, arrays), pixels, x


def test_ideal_counts_are_the_quantized_anns_levels(tmp_path):
    from spikeforge.train.calibrate import ideal_counts

    net, network, pixels, x = _quantized_residual(tmp_path)
    ideal = ideal_counts(network, pixels)
    with torch.no_grad():
        logits, hidden = net(x, record=True)
        quant = net.quant_layers()
    traces = golden.run(network, pixels, trace=True).traces
    for name, activation in zip(net.hidden, hidden):
        lam = quant[name]["lam"] if isinstance(quant[name], dict) else quant[name].lam
        levels = np.floor((activation / (lam / net.levels)).numpy() + 0.5)
        # Where total / theta lies exactly halfway between two levels, the float ANN's rounding
        # may fall either way; everywhere else the integer ideal must equal the ANN's level.
        theta = network.layer(name).neuron.threshold
        total = traces[name].current.sum(axis=0)
        tie = (2 * total - theta) % (2 * theta) == 0
        differ = ideal[name] != levels
        assert not np.any(differ & ~tie), name
        assert np.all(np.abs(ideal[name] - levels)[differ] == 1) and differ.mean() < 0.01
    np.testing.assert_array_equal(ideal["fc"].argmax(axis=1), logits.argmax(dim=1).numpy())


def test_bias_calibration_moves_only_biases_and_reduces_the_excess(tmp_path):
    from spikeforge.train.calibrate import calibrate_biases, ideal_counts

    _, network, pixels, _ = _quantized_residual(tmp_path)
    calibrated, report = calibrate_biases(network, pixels)
    assert set(report) == {"res"} and report["res"]["bias_layer"] == "a"
    for before, after in zip(network.layers, calibrated.layers):
        if before.weight is not None:
            np.testing.assert_array_equal(before.weight, after.weight)
        assert before.neuron == after.neuron and before.scales == after.scales
        if before.name != "a" and before.bias is not None:
            np.testing.assert_array_equal(before.bias, after.bias)
    ideal = ideal_counts(network, pixels)["res"]

    def excess(net):
        counts = golden.run(net, pixels, trace=True).traces["res"].spikes.sum(axis=0)
        return np.abs((counts - ideal).mean(axis=(0, 2, 3))).sum()

    assert excess(calibrated) <= excess(network)
    assert_bit_exact(calibrated, pixels)


def test_bias_calibration_carries_the_rounded_away_fraction(tmp_path):
    # With ``carry``, a pass rounds its wanted correction plus the fraction earlier passes
    # rounded away, and leaves the new remainder: the same network, calibrated with an empty
    # carry and with a given one, must move the bias by the rounding of (wanted + given).
    from spikeforge.train.calibrate import calibrate_biases

    _, network, pixels, _ = _quantized_residual(tmp_path)
    before = network.layer("a").bias.astype(np.int64)
    plain, _ = calibrate_biases(network, pixels)
    empty = {}
    first, _ = calibrate_biases(network, pixels, carry=empty)
    moved = first.layer("a").bias.astype(np.int64) - before
    np.testing.assert_array_equal(moved, plain.layer("a").bias.astype(np.int64) - before)
    assert set(empty) == {"res"} and np.all(np.abs(empty["res"]) <= 0.5)
    wanted = moved + empty["res"]
    given = np.random.default_rng(5).uniform(-1.5, 1.5, size=wanted.shape)
    carry = {"res": given.copy()}
    second, _ = calibrate_biases(network, pixels, carry=carry)
    moved = second.layer("a").bias.astype(np.int64) - before
    np.testing.assert_array_equal(moved, np.floor(wanted + given + 0.5))
    np.testing.assert_allclose(carry["res"], wanted + given - moved)
    assert np.any(moved != plain.layer("a").bias.astype(np.int64) - before)
