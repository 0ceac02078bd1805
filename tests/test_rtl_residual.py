# amaranth: UnusedElaboratable=no
"""Residual adds on the RTL: one descriptor per add whose segments are its inputs (current
layers fused with their weights and bias times the scale, spike inputs as one-hot identity
rows), the bitmaps a shortcut keeps live, the fit reasons a residual sum adds, and zero
mismatches with exact cycles on a small ResNet (identity and downsampling blocks) and on
random residual networks, 4 and 16 PEs, reference MAC and PIM."""

from dataclasses import replace

import numpy as np
import pytest

from counter_checks import assert_counters_predicted
from random_networks import random_input, random_network
from spikeforge.golden import network_from_parts
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.layout import plan_network
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.sim.harness import Harness

CONFIG = dict(membrane_bits=32, psum_bits=48, leak_multiplier=True, max_positions=64,
              weight_depth=1024, spike_memory_bits=8192, max_in_channels=64,
              max_out_channels=64, max_feature_size=16, spike_bitmaps=3)
SIZES = MemorySizes(bias_depth=64, max_layers=32, pixel_depth=4096, pixel_bits=8)


def _conv(name, source, channels, kernel, stride, padding, out_shape, *, output="spikes",
          threshold=None, bias=False):
    obj = {"name": name, "type": "conv2d", "inputs": [source], "output": output,
           "out_channels": channels, "kernel": [kernel] * 2, "stride": [stride] * 2,
           "padding": [padding] * 2, "out_shape": out_shape, "weight_bits": 4}
    if threshold is not None:
        obj["neuron"] = {"threshold": threshold, "reset": "subtract", "v_init": "half"}
    if bias:
        obj["bias_bits"] = 8
    return obj


def mini_resnet(scales=(1, 3), down_scales=(2, -1)):
    """stem (direct) -> identity block (conv1, conv2 current + stem spikes) -> downsampling
    block (conv1 stride 2, conv2 current + a 1x1 stride-2 current of the block input) ->
    flatten -> linear."""
    layers = [
        _conv("stem", "input", 4, 3, 1, 1, [4, 6, 6], threshold=300, bias=True),
        _conv("b_conv1", "stem", 4, 3, 1, 1, [4, 6, 6], threshold=4),
        _conv("b_conv2", "b_conv1", 4, 3, 1, 1, [4, 6, 6], output="current", bias=True),
        {"name": "b_add", "type": "add", "inputs": ["b_conv2", "stem"], "scales": list(scales),
         "output": "spikes", "out_shape": [4, 6, 6],
         "neuron": {"threshold": 5, "reset": "subtract", "v_init": "half"}},
        _conv("d_conv1", "b_add", 6, 3, 2, 1, [6, 3, 3], threshold=4),
        _conv("d_conv2", "d_conv1", 6, 3, 1, 1, [6, 3, 3], output="current"),
        _conv("d_down", "b_add", 6, 1, 2, 0, [6, 3, 3], output="current", bias=True),
        {"name": "d_add", "type": "add", "inputs": ["d_conv2", "d_down"],
         "scales": list(down_scales), "output": "spikes", "out_shape": [6, 3, 3],
         "neuron": {"threshold": 4, "reset": "zero"}},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [54]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_features": 3,
         "out_shape": [3], "weight_bits": 4, "neuron": {}},
    ]
    rng = np.random.default_rng(11)
    arrays = {}
    for layer in layers:
        if layer["type"] == "conv2d":
            c_in = 1 if layer["inputs"] == ["input"] else (4 if layer["name"] != "d_conv2"
                                                           else 6)
            shape = (layer["out_channels"], c_in, *layer["kernel"])
            arrays[f"{layer['name']}.weight"] = rng.integers(-3, 8, shape).astype(np.int8)
            if "bias_bits" in layer:
                arrays[f"{layer['name']}.bias"] = rng.integers(
                    -20, 20, layer["out_channels"]).astype(np.int32)
    arrays["fc.weight"] = rng.integers(-8, 8, (3, 54)).astype(np.int8)
    manifest = {"format": "spikeforge-bundle", "format_version": 1, "name": "mini_resnet",
                "timesteps": 3, "membrane_bits": 16,
                "input": {"shape": [1, 6, 6], "bits": 8, "raw_min": 0.0, "raw_max": 1.0},
                "layers": layers}
    return network_from_parts(manifest, arrays)


def test_layout_fuses_currents_and_keeps_the_shortcut():
    network = mini_resnet()
    layout = plan_network(network, AcceleratorConfig(pes=4, **CONFIG))
    assert [p.name for p in layout.plans] == ["stem", "b_conv1", "b_add", "d_conv1", "d_add",
                                              "fc"]
    add = layout.plans[2]
    assert [(s.layer, s.source, s.weights, s.scale) for s in add.segments] == [
        ("b_conv2", "b_conv1", "layer", 1), ("b_add", "stem", "one_hot", 3)]
    down = layout.plans[4]
    assert [(s.layer, s.source, s.stride, s.out, s.scale) for s in down.segments] == [
        ("d_conv2", "d_conv1", (1, 1, 1), (1, 3, 3), 2),
        ("d_down", "b_add", (1, 2, 2), (1, 3, 3), -1)]
    # stem's bitmap stays live while b_conv1 and b_add run: three bitmaps.
    assert layout.bitmaps == 3
    assert [(p.out_sel, p.in_sels) for p in layout.plans[:5]] == [
        (0, (0,)), (1, (0,)), (2, (1, 0)), (0, (2,)), (1, (0, 2))]


def test_program_scaled_rows_and_summed_bias():
    network = mini_resnet()
    program = build_program(network, AcceleratorConfig(pes=4, **CONFIG), SIZES)
    layer = program.descriptors[2]["layer"]
    base, stride = layer["weight_base"], layer["group_stride"]
    assert stride == 4 * 9 + 4  # conv2's taps, then one identity row per input channel
    conv2 = network.layer("b_conv2").weight
    assert program.weights[base + (2 * 3 + 1) * 3 + 2] == conv2[:, 2, 1, 2].tolist()
    assert [program.weights[base + 36 + c] for c in range(4)] == (3 * np.eye(4)).tolist()
    assert program.biases[layer["bias_base"]] == network.layer("b_conv2").bias.tolist()
    down = program.descriptors[4]["layer"]
    d_conv2, d_down = network.layer("d_conv2"), network.layer("d_down")
    # Group 1 (channels 4 and 5): d_conv2 rows (scale 2), then d_down rows (scale -1).
    group1 = down["weight_base"] + down["group_stride"]
    assert program.weights[group1 + 5][:2] == (2 * d_conv2.weight[4:, 0, 1, 2]).tolist()
    assert program.weights[group1 + 54 + 3][:2] == (-d_down.weight[4:, 3, 0, 0]).tolist()
    assert program.biases[down["bias_base"] + 1][:2] == (-d_down.bias[4:]).tolist()


def test_fits_reasons_of_a_residual_sum():
    network = mini_resnet(scales=(1, 100))
    config = AcceleratorConfig(pes=4, **{**CONFIG, "weight_bits": 6, "psum_bits": 8,
                                         "spike_bitmaps": 2})
    reasons = config.fits(network).reasons
    assert "the network 'mini_resnet' needs 3 spike bitmaps at once (a residual shortcut " \
           "stays live while its block runs), the config has 2 (1 over)" in reasons
    assert "layer 'b_add' needs 8-bit weight rows for its input 'stem' (scale 100), the " \
           "config has 6 (2 bits over)" in reasons
    # b_add's worst current: per channel, sum |conv2 weights| + |bias| + 100 (one spike).
    conv2 = network.layer("b_conv2")
    worst = int((np.abs(conv2.weight).reshape(4, -1).sum(axis=1) + np.abs(conv2.bias)
                 + 100).max())
    assert (worst, worst.bit_length() + 1) == (240, 9)
    assert "layer 'b_add' needs 9-bit partial sums for its worst-case current 240, the config " \
           "has 8 (1 bit over)" in reasons


@pytest.mark.parametrize("pes, first_layer", [(4, "pim"), (16, "mac")])
def test_sim_mini_resnet(pes, first_layer):
    network = mini_resnet()
    harness = Harness(network, AcceleratorConfig(pes=pes, first_layer=first_layer, **CONFIG),
                      sizes=SIZES)
    images = np.random.default_rng(pes).integers(0, 256, (1, 1, 6, 6))
    golden = harness.expected(images)
    assert all(golden.spikes[name].sum() > 0 for name in ("b_conv1", "b_add", "d_add"))
    results = harness.run(images, golden=golden)
    assert_counters_predicted(results)
    assert [r.output_membrane for r in results] == golden.output_membrane.tolist()


# Random residual networks that fit 8-bit weight rows: a direct-encoded current first
# (262, 286), spike and current inputs (255, 286), an add as the output layer (262, 276).
@pytest.mark.parametrize("pes", [4, 16])
@pytest.mark.parametrize("seed", [255, 262, 276, 286])
def test_sim_random_residual(seed, pes):
    manifest, arrays = random_network(seed, "residual")
    network = network_from_parts(manifest, arrays)
    config = AcceleratorConfig(pes=pes, first_layer="pim" if seed % 2 else "mac",
                               **{**CONFIG, "spike_bitmaps": 4})
    harness = Harness(network, config, sizes=replace(SIZES, pixel_bits=16))
    results = harness.run(random_input(np.random.default_rng(seed), manifest, 2))
    assert_counters_predicted(results)
