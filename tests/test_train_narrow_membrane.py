"""Membrane-aware direct SNN training (issue 17, SpQuant-SNN's narrow membranes).

- The stacked surrogate (spikeforge.train.lif.stacked_slope) is the sum of one sigmoid
  derivative per step between membrane levels, checked against that sum written out.
- The fused LIF layer with the stacked surrogate fires exactly as with the linear one (only
  the backward pass differs), and its hand-written BPTT equals autograd through a membrane
  whose saturation is given the derivative of a staircase of sigmoids.
- A tiny network trained at a 4-bit membrane, with current shifts, exports a 4-bit bundle
  that the golden model and the integer simulation reproduce spike for spike.
- The command line: --membrane-bits and --surrogate reach the hyperspectral recipe, are
  refused for the conversion presets and outside their range, with exit status 2.
"""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikeforge import golden
from spikeforge.tools.cli import main
from spikeforge.train import presets
from spikeforge.train.direct import DirectSNN, network_parts
from spikeforge.train.lif import SURROGATES, lif, stacked_slope

from bit_exact import assert_bit_exact
from test_train_hsi import _synthetic_patches, _tiny_specs

torch.set_num_threads(2)


def _sigmoid_staircase(u, low, high, sharpness):
    """``sum_k sig(a (u - k - 1/2))`` over the steps ``k = low .. high - 1``: a smooth
    staircase whose derivative is, by definition, the stacked surrogate."""
    steps = torch.arange(low, high, dtype=u.dtype)
    return torch.sigmoid(sharpness * (u[..., None] - steps - 0.5)).sum(dim=-1)


@pytest.mark.parametrize("sharpness", [1.0, 2.0, 4.0])
def test_stacked_slope_is_the_sum_of_sigmoid_derivatives(sharpness):
    low, high = -8, 7                      # a 4-bit membrane
    u = torch.arange(-20, 21, dtype=torch.float64)
    grid = u.clone().requires_grad_(True)
    _sigmoid_staircase(grid, low, high, sharpness).sum().backward()
    np.testing.assert_allclose(stacked_slope(u, low, high, sharpness).numpy(),
                               grid.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_stacked_slope_passes_gradient_inside_and_half_of_it_at_the_ends():
    low, high = -8, 7
    u = torch.arange(-30, 31, dtype=torch.float64)
    slope = dict(zip(u.tolist(), stacked_slope(u, low, high).tolist()))
    assert all(0.98 < slope[m] < 1.0 for m in range(low + 2, high - 1))
    for end, inward in ((low, 1), (high, -1)):   # symmetric about the middle of the range
        assert 0.85 < slope[end + inward] < 0.9
        assert abs(slope[end] - 0.5) < 0.01
        assert 0.08 < slope[end - inward] < 0.15 and slope[end - 3 * inward] < 0.01
    assert slope[-30] < 1e-9 and slope[30] < 1e-9


def _reference_stacked_lif(current, theta, factor, timesteps, v0, low, high, frac, gamma,
                           sharpness):
    """The recipe of test_train_hsi's reference, with the saturation's straight-through
    gradient replaced by the derivative of the sigmoid staircase."""
    v = torch.full(current.shape[1:], float(v0), dtype=current.dtype)
    spikes = []
    for t in range(timesteps):
        exact = torch.floor(v.detach() * factor.detach() / frac)
        smooth = v * factor / frac
        u = exact + (smooth - smooth.detach()) + current[t]
        stairs = _sigmoid_staircase(u, low, high, sharpness)
        w = torch.clamp(u.detach(), low, high) + (stairs - stairs.detach())
        z = torch.clamp(w / theta - 1.0, -1.0, 1.0)
        ramp = gamma * (z - torch.sign(z) * z * z / 2)
        s = (w >= theta).to(w.dtype) + (ramp - ramp.detach())
        spikes.append(s)
        v = w - s.detach() * theta
    return torch.stack(spikes)


def test_stacked_lif_fires_as_the_linear_one_and_its_bptt_equals_autograd():
    rng = np.random.default_rng(4)
    low, high = -8, 7
    current = torch.tensor(rng.integers(-6, 9, (6, 5, 7)), dtype=torch.float64,
                           requires_grad=True)
    theta = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    factor = torch.tensor(224.0, dtype=torch.float64, requires_grad=True)
    weights = torch.tensor(rng.normal(size=(6, 5, 7)))
    common = dict(timesteps=6, constant=False, v0=2, low=low, high=high, frac=256.0,
                  gamma=0.3)
    linear = lif(current, theta, factor, **common)
    mine = lif(current, theta, factor, surrogate="stacked", sharpness=2.0, **common)
    np.testing.assert_array_equal(mine.detach().numpy(), linear.detach().numpy())
    (mine * weights).sum().backward()
    grads = [current.grad.clone(), theta.grad.clone(), factor.grad.clone()]
    for tensor in (current, theta, factor):
        tensor.grad = None
    reference = _reference_stacked_lif(current, theta, factor, 6, 2, low, high, 256.0, 0.3,
                                       2.0)
    np.testing.assert_array_equal(mine.detach().numpy(), reference.detach().numpy())
    (reference * weights).sum().backward()
    for got, expected in zip(grads, (current.grad, theta.grad, factor.grad)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-9, atol=1e-12)
    # The saturated neurons learn under the stacked surrogate, not under the linear one.
    (linear * weights).sum().backward()
    assert not np.allclose(grads[0].numpy(), current.grad.numpy())


def test_lif_refuses_an_unknown_surrogate():
    with pytest.raises(ValueError, match="surrogate is 'tanh'"):
        lif(torch.zeros(2, 3), torch.tensor(4.0), torch.tensor(256.0), timesteps=2,
            constant=False, v0=0, low=-8, high=7, frac=256.0, gamma=0.3, surrogate="tanh")
    with pytest.raises(ValueError, match="surrogate is 'tanh'"):
        DirectSNN((1, 4, 5, 5), _tiny_specs(), input_scale=1.0, timesteps=2, surrogate="tanh")


@pytest.mark.parametrize("bits", [3, 17])
def test_direct_snn_refuses_an_output_membrane_outside_the_hidden_width_to_16(bits):
    with pytest.raises(ValueError, match=rf"^output_membrane_bits is {bits}, outside 4\.\.16 "
                                         rf"\(the hidden width up to the largest\)$"):
        DirectSNN((1, 4, 5, 5), _tiny_specs(), input_scale=1.0, timesteps=2, membrane_bits=4,
                  output_membrane_bits=bits)


def test_a_wider_output_membrane_trains_and_exports_exactly(tmp_path):
    # 4-bit hidden membranes, an 8-bit output sum: the output shift is sized for 8 bits (4
    # fewer than for 4, down to none), the bundle names the width, and golden agrees with
    # the trained net.
    pixels, labels = _synthetic_patches()
    x = torch.tensor(pixels, dtype=torch.float32)
    shifts = []
    for output_bits in (None, 8):
        torch.manual_seed(0)
        net = DirectSNN((1, 4, 5, 5), _tiny_specs(), input_scale=4.0 / 255, input_zero=128,
                        timesteps=4, weight_bits=4, membrane_bits=4, shift_currents=True,
                        output_membrane_bits=output_bits)
        net.calibrate(x)
        shifts.append(net.calibrate_output_shift(x))
    assert shifts[0] > 0 and shifts[1] == max(0, shifts[0] - 4)
    net.mode = "snn"
    with torch.no_grad():
        logits = net(x)
    input_spec = {"shape": [1, 4, 5, 5], "bits": 8, "raw_min": -2.0, "raw_max": 2.0}
    network = golden.write_bundle(tmp_path / "wide.sfb",
                                  *network_parts(net, name="wide", input_spec=input_spec))
    assert network.membrane_bits == 4 and network.output_layer.neuron.membrane_bits == 8
    reference = assert_bit_exact(network, pixels)
    unit = float(net.quant_layers()[net.output_name]["membrane_unit"])
    np.testing.assert_allclose(logits.numpy() * net.timesteps / unit, reference.output_membrane)
    assert np.abs(reference.output_membrane).max() > 8   # beyond what 4 bits hold


def test_the_command_lines_surrogates_are_the_trainers():
    assert presets.SURROGATES == SURROGATES


def test_direct_training_at_a_4_bit_membrane_exports_an_exact_4_bit_bundle(tmp_path):
    pixels, labels = _synthetic_patches()
    x, y = torch.tensor(pixels, dtype=torch.float32), torch.tensor(labels)
    torch.manual_seed(0)
    net = DirectSNN((1, 4, 5, 5), _tiny_specs(), input_scale=4.0 / 255, input_zero=128,
                    timesteps=4, weight_bits=4, membrane_bits=4, surrogate="stacked",
                    shift_currents=True)
    net.calibrate(x)
    assert net.calibrate_output_shift(x) > 0
    net.mode = "snn"
    optimizer = torch.optim.Adam(net.parameters_for("snn"), lr=3e-3)
    for _ in range(10):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits, trains = net(x, record=True)
    assert float((logits.argmax(dim=1) == y).float().mean()) > 0.5
    input_spec = {"shape": [1, 4, 5, 5], "bits": 8, "raw_min": -2.0, "raw_max": 2.0}
    network = golden.write_bundle(tmp_path / "narrow.sfb",
                                  *network_parts(net, name="narrow", input_spec=input_spec))
    assert network.membrane_bits == 4
    assert all(1 <= layer.neuron.threshold <= 4 for layer in network.layers
               if layer.is_synaptic and layer.output == "spikes")
    assert all(layer.neuron.current_shift > 0 for layer in network.layers if layer.is_synaptic)
    reference = assert_bit_exact(network, pixels)
    for name, spikes in trains.items():
        np.testing.assert_array_equal(spikes.numpy(), reference.traces[name].spikes)
    membranes = np.concatenate([reference.traces[name].membrane.ravel() for name in trains])
    assert membranes.min() >= -8 and membranes.max() <= 7
    assert (membranes == 7).any() or (membranes == -8).any()   # the 4 bits do saturate


@pytest.mark.parametrize("argv, message", [
    (["mnist-resnet", "--membrane-bits", "4"],
     "--membrane-bits applies to mnist-vgg, indian-pines-3d, indian-pines-hybrid, not to "
     "mnist-resnet"),
    (["digits-conv", "--surrogate", "stacked"],
     "--surrogate applies to mnist-vgg, indian-pines-3d, indian-pines-hybrid, not to "
     "digits-conv"),
    (["mnist-vgg", "--surrogate", "stacked"], "--surrogate needs --membrane-bits below 16"),
    (["mnist-vgg", "--membrane-bits", "4", "--prune", "0.5"],
     "--prune with --membrane-bits below 16 is not implemented"),
    (["indian-pines-3d", "--membrane-bits", "1"], "1 is outside the supported membrane bits"),
    (["indian-pines-3d", "--membrane-bits", "17"], "17 is outside the supported membrane bits"),
    (["indian-pines-3d", "--surrogate", "tanh"], "invalid choice: 'tanh'"),
])
def test_cli_refuses_membrane_options_it_cannot_apply(argv, message, tmp_path, capsys):
    out = tmp_path / "never.sfb"
    assert main(["train", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("seed", range(0, 40, 4))
def test_integer_simulation_shifts_the_current_as_the_golden_model(seed):
    from random_networks import random_input, random_network
    from test_golden_network import with_current_shifts

    manifest, arrays = random_network(seed)
    network = golden.network_from_parts(with_current_shifts(manifest, seed + 20_000), arrays)
    assert_bit_exact(network, random_input(np.random.default_rng(seed), manifest, 3))


def test_cli_quick_narrow_membrane_training_writes_an_exact_shifting_bundle(tmp_path, capsys):
    from spikeforge.data import hsi
    from test_train_hsi import SHARED

    out = tmp_path / "narrow.sfb"
    assert main(["train", "indian-pines-3d", "--membrane-bits", "4", "--epochs", "1",
                 "--train-limit", "96", "--seed", "2", "--out", str(out),
                 "--data-dir", str(SHARED)]) == 0
    assert "4-bit membrane" in capsys.readouterr().err
    network = golden.read_bundle(out)
    config = network.metadata["config"]
    assert network.membrane_bits == 4 and config["membrane_bits"] == 4
    assert network.name == "indian_pines_3d_m4"
    assert config["surrogate"] == "stacked" and config["shift_currents"] is True
    shifts = [layer.neuron.current_shift for layer in network.layers if layer.is_synaptic]
    assert all(shift > 0 for shift in shifts)
    assert network.metadata["output_current_shift"] == shifts[-1]
    x, y, _ = hsi.rebuild_test(network.dataset["hsi"], SHARED)
    reference = assert_bit_exact(network, golden.quantize_input(x[:96], network.input))
    assert network.metadata["snn_correct"] == int((reference.predictions == y[:96]).sum())


@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="mnist-resnet", membrane_bits=4),
     "membrane-aware training is implemented for the presets mnist-vgg, indian-pines-3d, "
     "indian-pines-hybrid, not for 'mnist-resnet'"),
    (dict(preset="indian-pines-3d", membrane_bits=1), "membrane bits must lie in 2..16, not 1"),
    (dict(preset="indian-pines-3d", surrogate="tanh"),
     "surrogate is 'tanh'; expected one of linear, stacked"),
    (dict(preset="mnist-vgg", surrogate="stacked"),
     "mnist-vgg at a 16-bit membrane is converted, not trained as an SNN"),
    (dict(preset="mnist-vgg", membrane_bits=4, prune={"sparsity": 0.5}),
     "pruning a network trained for a narrow membrane is not implemented"),
])
def test_train_preset_refuses_membrane_options_it_cannot_apply(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        presets.train_preset(out=tmp_path / "never.sfb", **kwargs)
    assert not (tmp_path / "never.sfb").exists()


def test_cli_quick_narrow_mnist_trains_directly_and_exports_an_exact_bundle(tmp_path, capsys):
    from spikeforge.data.datasets import mnist_test
    from test_train_hsi import SHARED

    out = tmp_path / "mnist4.sfb"
    assert main(["train", "mnist-vgg", "--membrane-bits", "4", "--epochs", "1",
                 "--train-limit", "64", "--out", str(out), "--data-dir", str(SHARED)]) == 0
    assert "[snn] epoch 1/1" in capsys.readouterr().err
    network = golden.read_bundle(out)
    meta = network.metadata
    assert meta["recipe"] == "mnist-direct-snn-v1" and meta["preset"] == "mnist-vgg"
    assert network.membrane_bits == 4 and meta["config"]["surrogate"] == "stacked"
    assert network.name == "mnist_vgg_m4"
    assert [layer.type for layer in network.layers][:2] == ["conv2d", "maxpool2d"]
    assert all(layer.neuron.current_shift > 0 for layer in network.layers if layer.is_synaptic)
    # The output layer sums its 8 steps at its own, wider membrane (docs/bundle.md).
    assert network.layer_membrane_bits(network.output_layer) == 8
    assert network.output_layer.neuron.membrane_bits == meta["config"]["output_membrane_bits"]
    x, y = mnist_test(SHARED)
    reference = assert_bit_exact(network, golden.quantize_input(x[:64], network.input))
    assert meta["snn_correct"] == int((reference.predictions == y[:64]).sum())


# ----------------------------------------------------------------------------- shipped bundles

def _shipped(name):
    from pathlib import Path

    import spikeforge

    return golden.read_bundle(Path(spikeforge.__file__).resolve().parent / "models" / name)


@pytest.mark.parametrize("name, recipe, bits, weight_bits", [
    ("indian_pines_3d_m4.sfb", "hsi-direct-snn-v1", 4, 6),
    ("mnist_vgg_m4.sfb", "mnist-direct-snn-v1", 4, 4),
    ("mnist_vgg_w2_m3.sfb", "mnist-direct-snn-v1", 3, 2)])
def test_shipped_narrow_bundle_is_an_exact_narrow_network(name, recipe, bits, weight_bits):
    """The shipped narrow bundles: ``bits``-bit membranes with current shifts on every
    spiking layer, recorded as trained at that width (ternary weights -1..1 where 2 bits),
    and bit-exact between the golden model and the integer simulation on a fixed sample of
    their test split."""
    from spikeforge.data.datasets import mnist_test
    from test_train_hsi import SHARED

    network = _shipped(name)
    meta = network.metadata
    assert network.membrane_bits == bits and meta["recipe"] == recipe
    assert meta["config"]["membrane_bits"] == bits and meta["config"]["surrogate"] == "stacked"
    # Every spiking layer shifts (the 8-bit output layer of the ternary one needs none).
    assert all(layer.neuron.current_shift > 0 for layer in network.layers
               if layer.is_synaptic and layer.output == "spikes")
    weights = [layer for layer in network.layers if layer.is_synaptic]
    assert {layer.weight_bits for layer in weights} == {weight_bits}
    top = (1 << (weight_bits - 1)) - 1
    assert all(np.abs(layer.weight).max() <= top for layer in weights)
    if recipe.startswith("hsi"):
        from spikeforge.data import hsi

        x, _, _ = hsi.rebuild_test(network.dataset["hsi"], SHARED)
    else:
        x, _ = mnist_test(SHARED)
    index = np.linspace(0, len(x) - 1, 16).astype(np.int64)
    reference = assert_bit_exact(network, golden.quantize_input(x[index], network.input))
    for layer_name, count in reference.spikes.items():
        assert count.sum() > 0, layer_name


def test_ternary_weights_and_3_bit_membranes_get_their_own_snn_phase(monkeypatch, tmp_path):
    # BPTT at the 4-bit rate sent the ternary 3-bit network to chance, and so did a learned
    # leak at 3 bits (README): ternary weights train the SNN at their own, lower rate, and a
    # 3-bit membrane keeps its leak fixed; 4-bit weights and membranes keep the usual phase.
    import spikeforge.train.mnist_direct as recipe
    from test_train_hsi import SHARED

    phases, real = [], recipe.mode_optimizer

    def recording(net, *, lr, leak_lr, steps):
        phases.append((net.mode, lr, leak_lr))
        return real(net, lr=lr, leak_lr=leak_lr, steps=steps)

    monkeypatch.setattr(recipe, "mode_optimizer", recording)
    config = recipe.MnistDirectConfig(train_limit=64, eval_limit=64, calibration_images=64,
                                      ann_epochs=1, qann_epochs=1, snn_epochs=1)
    assert config.ternary_snn_lr < config.snn_lr and config.learned_leak_bits == 4
    for weight_bits, membrane_bits in ((2, 3), (4, 4)):
        recipe.train_mnist_direct(tmp_path / f"w{weight_bits}.sfb",
                                  dataclasses.replace(config, weight_bits=weight_bits,
                                                      membrane_bits=membrane_bits),
                                  data_dir=SHARED, log=lambda line: None)
    assert [(lr, leak) for mode, lr, leak in phases if mode == "snn"] == [
        (config.ternary_snn_lr, 0.0), (config.snn_lr, config.leak_lr)]
