"""Direct SNN training and the shipped hyperspectral SNNs.

- The fused LIF layer (spikeforge.train.lif) steps exactly like the golden model's aggregation
  core, and its hand-written BPTT equals autograd through the same straight-through recipe.
- A small network trained directly as an SNN (conv3d, spectral fold, conv2d) exports a bundle
  whose thresholds and leaks are the trained integers, and whose spikes the golden model and
  the PyTorch integer simulation reproduce exactly.
- The shipped Indian Pines bundles: PyTorch's integer simulation (spikeforge.train.intsim) and
  the golden model agree on every spike, membrane and current of a fixed sample of the test
  split, and `spikeforge golden` reproduces the accuracy recorded in their metadata.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import spikeforge
from spikeforge import golden
from spikeforge.golden.neuron import aggregate
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.data import hsi
from spikeforge.tools.cli import main
from spikeforge.data.datasets import default_data_dir
from spikeforge.train.direct import DirectSNN, network_parts
from spikeforge.train.lif import lif

from bit_exact import assert_bit_exact

torch.set_num_threads(2)

MODELS = Path(spikeforge.__file__).resolve().parent / "models"
SHIPPED = {"indian-pines-3d": MODELS / "indian_pines_3d.sfb",
           "indian-pines-hybrid": MODELS / "indian_pines_hybrid.sfb"}
SHARED = default_data_dir(Path(__file__).resolve().parent.parent)


# ----------------------------------------------------------------------------- the LIF layer

def test_lif_forward_steps_like_the_golden_aggregation_core():
    rng = np.random.default_rng(0)
    currents = rng.integers(-60, 90, (6, 5, 7))
    neuron = golden.Neuron(threshold=40, reset="subtract", v_init="half",
                           leak=golden.Leak(kind="mul", factor=203, frac_bits=8))
    spikes = lif(torch.tensor(currents, dtype=torch.float32), torch.tensor(40.0),
                 torch.tensor(203.0), timesteps=6, constant=False, v0=20, low=-512, high=511,
                 frac=256.0, gamma=0.3)
    v = np.full((5, 7), 20, dtype=np.int64)
    for t in range(6):
        v, fired = aggregate(v, currents[t], neuron, 10)
        np.testing.assert_array_equal(spikes[t].numpy(), fired)
    assert spikes.sum() > 0 and (spikes == 0).any()


def _reference_lif(current, theta, factor, timesteps, v0, low, high, frac, gamma):
    """The same recipe through autograd: straight-through floor, surrogate spike via its
    antiderivative ``gamma * (z - sign(z) z^2 / 2)`` on ``z = w / theta - 1`` clipped to
    [-1, 1], detached reset spike."""
    v = torch.full(current.shape[1:], float(v0), dtype=current.dtype)
    spikes = []
    for t in range(timesteps):
        exact = torch.floor(v.detach() * factor.detach() / frac)
        smooth = v * factor / frac
        w = torch.clamp(exact + (smooth - smooth.detach()) + current[t], low, high)
        z = torch.clamp(w / theta - 1.0, -1.0, 1.0)
        ramp = gamma * (z - torch.sign(z) * z * z / 2)
        s = (w >= theta).to(w.dtype) + (ramp - ramp.detach())
        spikes.append(s)
        v = w - s.detach() * theta
    return torch.stack(spikes)


def test_lif_bptt_equals_autograd_of_the_same_recipe():
    rng = np.random.default_rng(1)
    current = torch.tensor(rng.integers(-30, 60, (5, 4, 6)), dtype=torch.float64,
                           requires_grad=True)
    theta = torch.tensor(37.0, dtype=torch.float64, requires_grad=True)
    factor = torch.tensor(230.0, dtype=torch.float64, requires_grad=True)
    weights = torch.tensor(rng.normal(size=(5, 4, 6)))
    mine = lif(current, theta, factor, timesteps=5, constant=False, v0=18, low=-1000,
               high=1000, frac=256.0, gamma=0.3)
    (mine * weights).sum().backward()
    grads = [current.grad.clone(), theta.grad.clone(), factor.grad.clone()]
    for tensor in (current, theta, factor):
        tensor.grad = None
    reference = _reference_lif(current, theta, factor, 5, 18, -1000, 1000, 256.0, 0.3)
    np.testing.assert_array_equal(mine.detach().numpy(), reference.detach().numpy())
    (reference * weights).sum().backward()
    for got, expected in zip(grads, (current.grad, theta.grad, factor.grad)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)
    assert float(grads[1]) != 0 and float(grads[2]) != 0


# ----------------------------------------------------------------------------- direct training

def _synthetic_patches(n=160, seed=0):
    """(n, 1, 4, 5, 5) 8-bit patches of 3 classes that differ in their spectral profile."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    profiles = np.array([[200, 60, 60, 200], [60, 200, 200, 60], [130, 130, 40, 220]])
    x = profiles[labels][:, None, :, None, None] + rng.integers(-50, 50, (n, 1, 4, 5, 5))
    return np.clip(x, 0, 255), labels


def _tiny_specs():
    return [{"name": "c1", "type": "conv3d", "out_channels": 4, "kernel": [2, 3, 3],
             "stride": [1, 1, 1], "padding": [0, 0, 0]},
            {"name": "fold", "type": "flatten", "start_dim": 0, "end_dim": 1},
            {"name": "c2", "type": "conv2d", "out_channels": 6, "kernel": [3, 3],
             "stride": [1, 1], "padding": [0, 0]},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "out_features": 3}]


def test_direct_training_exports_trained_leaks_and_thresholds_exactly(tmp_path):
    pixels, labels = _synthetic_patches()
    x, y = torch.tensor(pixels, dtype=torch.float32), torch.tensor(labels)
    torch.manual_seed(0)
    net = DirectSNN((1, 4, 5, 5), _tiny_specs(), input_scale=4.0 / 255, input_zero=128,
                    timesteps=4, weight_bits=5, membrane_bits=12)
    net.calibrate(x)
    net.mode = "snn"                       # direct SNN training from the start
    with torch.no_grad():
        net.betas["c1"].fill_(0.9)
    optimizer = torch.optim.Adam(net.parameters_for("snn"), lr=3e-3)
    for _ in range(12):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits, trains = net(x, record=True)
    assert float((logits.argmax(dim=1) == y).float().mean()) > 0.6
    assert net.betas["c1"].item() != 0.9 and net.thetas["c2"].grad is not None

    input_spec = {"shape": [1, 4, 5, 5], "bits": 8, "raw_min": -2.0, "raw_max": 2.0}
    network = golden.write_bundle(tmp_path / "tiny.sfb",
                                  *network_parts(net, name="tiny", input_spec=input_spec))
    qmax = 15
    s_in = 4.0 / 255
    for name in ("c1", "c2"):
        layer = network.layer(name)
        weight = net.synaptic[name].weight.detach().double()
        theta = float(net.thetas[name].detach())
        unit = max(float(weight.abs().max()) / qmax * s_in, theta / 2 ** 10)  # 12-bit membrane
        assert layer.neuron.threshold == int(np.floor(theta / unit + 0.5))
        beta = min(1.0, max(0.0, float(net.betas[name].detach())))
        factor = int(np.floor(beta * 256 + 0.5))
        expected = golden.Leak() if factor == 256 else golden.Leak("mul", factor=factor,
                                                                  frac_bits=8)
        assert layer.neuron.leak == expected and layer.neuron.v_init == "half"
        s_in = layer.neuron.threshold * unit
    assert network.layer("c1").neuron.leak.kind == "mul"
    reference = assert_bit_exact(network, pixels)
    for name, spikes in trains.items():    # the training forward pass is the integer SNN
        np.testing.assert_array_equal(spikes.numpy(), reference.traces[name].spikes)
    np.testing.assert_array_equal(reference.predictions, logits.argmax(dim=1).numpy())


def test_quantized_ann_levels_are_the_direct_layers_spike_counts(tmp_path):
    """With T = L and v_init half, the direct-encoded layer's spike count is the quantized
    ReLU's level (its current is constant), as in the conversion route."""
    pixels, _ = _synthetic_patches(40, seed=3)
    x = torch.tensor(pixels, dtype=torch.float32)
    torch.manual_seed(1)
    net = DirectSNN((1, 4, 5, 5), _tiny_specs(), input_scale=4.0 / 255, input_zero=128,
                    timesteps=6)
    net.calibrate(x)
    net.mode = "qann"
    with torch.no_grad():
        _, hidden = net(x, record=True)
        net.mode = "snn"
        _, trains = net(x, record=True)
        theta = net.quant_layers()["c1"]["theta"]
    levels = torch.floor(hidden[0] / (theta / 6) + 0.5)
    np.testing.assert_array_equal(trains["c1"].sum(dim=0).numpy(), levels.numpy())


QUICK = ["--epochs", "1", "--train-limit", "96", "--seed", "3"]


@pytest.fixture(scope="module")
def quick_cli_run(tmp_path_factory):
    """`spikeforge train indian-pines-hybrid` on 96 training pixels: (bundle path, stderr)."""
    import io
    from contextlib import redirect_stderr

    out = tmp_path_factory.mktemp("hsi") / "hyb.sfb"
    err = io.StringIO()
    with redirect_stderr(err):
        status = main(["train", "indian-pines-hybrid", "--out", str(out), *QUICK,
                       "--data-dir", str(SHARED)])
    assert status == 0, err.getvalue()
    return out, err.getvalue()


def test_cli_quick_hsi_training_writes_an_exact_bundle(quick_cli_run):
    out, err = quick_cli_run
    assert "[ann] epoch 1/1" in err and "[snn] epoch 1/1" in err
    network = golden.read_bundle(out)
    meta = network.metadata
    assert meta["preset"] == "indian-pines-hybrid" and meta["training_images"] == 96
    assert meta["seed"] == 3 and network.dataset["hsi"]["split"]["seed"] == 3
    assert network.dataset["hsi"]["split"]["train_fraction"] == 0.3
    # HybridSN's layout, narrowed: 3D spectral-spatial layers, the spectral fold, a 2D layer.
    assert [(layer.type, layer.out_shape) for layer in network.layers] == [
        ("conv3d", (24, 2, 9, 9)), ("conv3d", (48, 2, 7, 7)), ("flatten", (96, 7, 7)),
        ("conv2d", (32, 5, 5)), ("flatten", (800,)), ("linear", (64,)), ("linear", (16,))]
    x, y, _ = hsi.rebuild_test(network.dataset["hsi"], SHARED)
    pixels = golden.quantize_input(x[:96], network.input)
    reference = assert_bit_exact(network, pixels)
    assert meta["snn_correct"] == int((reference.predictions == y[:96]).sum())


def test_hsi_training_is_deterministic_for_a_seed(quick_cli_run, tmp_path):
    """Training again with the CLI run's seed writes the same integers (weights, biases,
    thresholds, leaks) and the same accuracies."""
    from spikeforge.train.presets import train_preset

    first = golden.read_bundle(quick_cli_run[0])
    # Through the presets' entry point, as the CLI: the run's thread count (recorded) is set.
    threads = first.metadata["torch_threads"]
    second = train_preset("indian-pines-hybrid", tmp_path / "again.sfb", epochs=1, seed=3,
                          data_dir=SHARED, train_limit=96, log=lambda line: None,
                          threads=threads).network
    assert [layer.name for layer in first.layers] == [layer.name for layer in second.layers]
    for a, b in zip(first.layers, second.layers):
        if a.is_synaptic:
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(a.bias, b.bias)
        assert a.neuron == b.neuron
    for key in ("ann_float_accuracy", "ann_qrelu_accuracy", "snn_accuracy", "snn_correct"):
        assert first.metadata[key] == second.metadata[key]


# ----------------------------------------------------------------------------- shipped bundles

SAMPLE, CHUNK = 400, 100


@pytest.mark.parametrize("preset", sorted(SHIPPED))
def test_shipped_hsi_bundle_is_bit_exact_on_a_fixed_test_sample(preset):
    network = golden.read_bundle(SHIPPED[preset])
    x, y, _ = hsi.rebuild_test(network.dataset["hsi"], SHARED)
    # A fixed sample spread over the whole test split (every k-th pixel), in chunks.
    index = np.linspace(0, len(y) - 1, SAMPLE).astype(np.int64)
    pixels = golden.quantize_input(x[index], network.input)
    for first in range(0, SAMPLE, CHUNK):
        reference = assert_bit_exact(network, pixels[first:first + CHUNK])
        for name, count in reference.spikes.items():
            assert count.sum() > 0, name


@pytest.mark.parametrize("preset", sorted(SHIPPED))
def test_shipped_hsi_bundle_meets_its_preset(preset):
    network = golden.read_bundle(SHIPPED[preset])
    meta = network.metadata
    assert (network.timesteps, network.membrane_bits, network.input.bits) == (5, 16, 8)
    assert meta["preset"] == preset and meta["recipe"] == "hsi-direct-snn-v1"
    for layer in network.layers:
        if layer.is_synaptic:
            assert layer.weight_bits == 6 and np.abs(layer.weight).max() <= 31
            assert layer.out_shape[0] <= 64
    # It runs on the accelerator's default design with the trained leaks' multiplier and the
    # PIM first layer (`spikeforge simulate ... --first-layer pim`).
    config = AcceleratorConfig(leak_multiplier=True, first_layer="pim")
    report = config.fits(network)
    assert report, str(report)
    leaks = {layer.neuron.leak.kind for layer in network.layers
             if layer.neuron is not None and layer.neuron.threshold is not None}
    assert "mul" in leaks                  # the trained leak is exported
    record = network.dataset["hsi"]
    assert record["split"] | {} == record["split"] and record["split"]["kind"] == "random"
    assert record["split"]["train_fraction"] == 0.3 and record["split"]["seed"] == 0
    assert meta["training_seconds"] < 30 * 60
    assert meta["snn_accuracy"] >= 0.99 and meta["snn_metrics"]["oa"] >= 99.0   # issue 3's bar


def test_golden_cli_reproduces_the_shipped_accuracy():
    """`spikeforge golden BUNDLE --dataset indian-pines --json` on the whole test split."""
    import io
    from contextlib import redirect_stdout

    for path in SHIPPED.values():
        network = golden.read_bundle(path)
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            status = main(["golden", str(path), "--dataset", "indian-pines", "--data-dir",
                           str(SHARED), "--json"])
        assert status == 0
        summary = json.loads(buffer.getvalue())
        meta = network.metadata
        assert summary["images"] == meta["test_images"]
        assert summary["correct"] == meta["snn_correct"]
        assert round(100 * summary["classification"]["kappa"], 2) == meta["snn_metrics"]["kappa"]
