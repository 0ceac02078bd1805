# amaranth: UnusedElaboratable=no
"""Space-to-depth (a direct conv2d and its 2x2 max-pool as 2x2 blocks of lanes) and weight
packing (two half-width rows per weight row): the layout's mapping against a naive
convolution, when each applies, and random networks on the RTL against the golden model."""

import numpy as np
import pytest

from counter_checks import assert_counters_predicted
from random_networks import random_input, random_network
from spikeforge.golden import network_from_parts
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.layout import (SLOTS, descriptor_neuron, descriptor_values, plan_network,
                                   segment_bias, segment_weights)
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.sim.harness import Harness

DESIGN = dict(pes=8, leak_multiplier=True, membrane_bits=32, psum_bits=48, max_positions=64,
              weight_depth=512, spike_memory_bits=8192, max_in_channels=64,
              max_out_channels=64, max_feature_size=16)
BOTH = AcceleratorConfig(**DESIGN, space_to_depth=True, weight_packing=True)


def naive_conv(image, weight, stride, padding):
    """``(C_out, H', W')`` of a 2D convolution, loop by loop."""
    channels, height, width = image.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    padded = np.zeros((channels, height + 2 * padding[0], width + 2 * padding[1]), np.int64)
    padded[:, padding[0]:padding[0] + height, padding[1]:padding[1] + width] = image
    out_h = (padded.shape[1] - kernel_h) // stride + 1
    out_w = (padded.shape[2] - kernel_w) // stride + 1
    out = np.zeros((out_channels, out_h, out_w), np.int64)
    for o in range(out_channels):
        for y in range(out_h):
            for x in range(out_w):
                window = padded[:, y * stride:y * stride + kernel_h,
                                x * stride:x * stride + kernel_w]
                out[o, y, x] = int((window * weight[o]).sum())
    return out


def pooled_manifest(*, channels=2, size=(6, 4), kernel=(3, 3), padding=(1, 1), stride=(1, 1),
                    pool_kernel=(2, 2), pool_stride=(2, 2), extra_reader=False, seed=0):
    """conv2d (direct) -> maxpool2d -> flatten -> linear output, optionally a second reader."""
    rng = np.random.default_rng(seed)
    out = [(s + 2 * p - k) // st + 1 for s, k, p, st in zip(size, kernel, padding, stride)]
    pooled = [(o - k) // s + 1 for o, k, s in zip(out, pool_kernel, pool_stride)]
    neuron = {"threshold": 40, "reset": "subtract"}
    layers = [
        {"name": "conv", "type": "conv2d", "inputs": ["input"], "output": "spikes",
         "out_channels": channels, "kernel": list(kernel), "stride": list(stride),
         "padding": list(padding), "weight_bits": 4, "bias_bits": 8, "neuron": neuron,
         "out_shape": [channels, *out]},
        {"name": "pool", "type": "maxpool2d", "inputs": ["conv"], "output": "spikes",
         "kernel": list(pool_kernel), "stride": list(pool_stride),
         "out_shape": [channels, *pooled]},
        {"name": "flat", "type": "flatten", "inputs": ["pool"], "output": "spikes",
         "out_shape": [channels * pooled[0] * pooled[1]]},
        {"name": "fc", "type": "linear", "inputs": ["flat"], "output": "membrane",
         "out_features": 3, "weight_bits": 4, "neuron": {}, "out_shape": [3]},
    ]
    arrays = {"conv.weight": rng.integers(-8, 8, (channels, 1, *kernel)).astype(np.int8),
              "conv.bias": rng.integers(-20, 20, channels).astype(np.int32),
              "fc.weight": rng.integers(-8, 8, (3, layers[2]["out_shape"][0])).astype(np.int8)}
    if extra_reader:  # a second max-pool of the conv, summed with the first
        layers[2:2] = [
            {"name": "side", "type": "maxpool2d", "inputs": ["conv"], "output": "spikes",
             "kernel": list(pool_kernel), "stride": list(pool_stride),
             "out_shape": [channels, *pooled]},
            {"name": "sum", "type": "add", "inputs": ["pool", "side"], "output": "spikes",
             "scales": [1, 1], "neuron": {"threshold": 1, "reset": "zero"},
             "out_shape": [channels, *pooled]}]
        layers[4]["inputs"] = ["sum"]
    manifest = {"format": "spikeforge-bundle", "format_version": 1, "name": "pooled",
                "timesteps": 3, "membrane_bits": 16,
                "input": {"shape": [1, *size], "bits": 4, "raw_min": 0.0, "raw_max": 1.0},
                "layers": layers, "dataset": {}, "metadata": {}}
    return manifest, arrays


@pytest.mark.parametrize("kernel, padding, size", [
    ((3, 3), (1, 1), (6, 4)), ((2, 2), (0, 0), (5, 7)), ((1, 3), (0, 1), (4, 6))])
def test_space_to_depth_is_the_same_convolution(kernel, padding, size):
    network = network_from_parts(*pooled_manifest(kernel=kernel, padding=padding, size=size))
    plan = plan_network(network, BOTH).plans[0]
    assert (plan.pooled, plan.channels) == ("pool", SLOTS * 2)
    segment = plan.segments[0]
    assert (segment.kernel, segment.stride) == ((1, kernel[0] + 1, kernel[1] + 1), (1, 2, 2))
    conv = network.layer("conv")
    image = np.random.default_rng(1).integers(0, 16, (1, *size))
    original = naive_conv(image, np.asarray(conv.weight, np.int64), 1, padding)
    blocked = naive_conv(image, segment_weights(network, segment)[:, :, 0], 2, padding)
    assert blocked.shape[1:] == (plan.height, plan.width)
    # The descriptor's view of the layer's output is what the blocked convolution computes.
    np.testing.assert_array_equal(descriptor_values(plan, original),
                                  blocked.reshape(plan.channels, plan.positions))
    np.testing.assert_array_equal(segment_bias(network, segment),
                                  np.repeat(np.asarray(conv.bias), SLOTS))
    for lane in range(plan.channels):
        for position in range(plan.positions):
            channel, y, x = descriptor_neuron(plan, lane, position)
            assert blocked.reshape(plan.channels, -1)[lane, position] == original[channel, y, x]


@pytest.mark.parametrize("change", [
    {"pool_stride": (1, 1)}, {"pool_kernel": (3, 3), "pool_stride": (2, 2)},
    {"size": (5, 4)}, {"stride": (2, 2), "size": (8, 8)}, {"channels": 3},
    {"extra_reader": True}])
def test_space_to_depth_only_where_it_is_the_same_network(change):
    network = network_from_parts(*pooled_manifest(**change))
    plans = plan_network(network, BOTH).plans
    assert [p.pooled for p in plans] == [None] * len(plans)
    assert "pool" in [p.name for p in plans]  # the pool keeps its own pass


def test_space_to_depth_off_by_default():
    network = network_from_parts(*pooled_manifest())
    plans = plan_network(network, AcceleratorConfig(**DESIGN)).plans
    assert [p.name for p in plans] == ["conv", "pool", "fc"]
    fused = plan_network(network, BOTH).plans
    assert [p.name for p in fused] == ["conv", "fc"]
    assert fused[1].segments[0].source == "pool"  # the bitmap holds the pool's spikes
    assert fused[1].in_sels == (fused[0].out_sel,)


def test_fits_counts_the_blocked_positions_and_the_pooled_bitmap():
    network = network_from_parts(*pooled_manifest(size=(12, 12)))  # 144 positions
    small = dict(DESIGN, max_positions=36, spike_memory_bits=3 * 36 * 8, max_in_channels=72)
    assert not AcceleratorConfig(**small).fits(network)
    assert AcceleratorConfig(**small, space_to_depth=True).fits(network)


def test_packed_rows_are_half_the_memory():
    manifest, arrays = random_network(2, "conv2d")
    network = network_from_parts(manifest, arrays)
    plain = build_program(network, AcceleratorConfig(**DESIGN), MemorySizes(pixel_bits=16))
    packed = build_program(network, BOTH, MemorySizes(pixel_bits=16))
    segments = [s for p in packed.layers for s in p.segments if s.packed]
    assert segments
    saved = sum(s.rows_per_group - s.memory_rows_per_group for s in segments)
    assert saved > 0 and len(plain.weights) - len(packed.weights) == saved


@pytest.mark.parametrize("seed", [2, 4, 5, 7])
def test_sim_pooled_random_networks(seed):
    manifest, arrays = random_network(seed, "pooled")
    network = network_from_parts(manifest, arrays)
    assert any(p.pooled for p in plan_network(network, BOTH).plans)
    images = random_input(np.random.default_rng(seed), manifest, 2)
    results = Harness(network, BOTH).run(images)
    assert_counters_predicted(results)
    assert [r.prediction for r in results] == [r.expected_prediction for r in results]


@pytest.mark.parametrize("seed, template", [(1, "conv2d"), (6, "residual"), (9, "residual")])
def test_sim_packed_random_networks(seed, template):
    manifest, arrays = random_network(seed, template)
    network = network_from_parts(manifest, arrays)
    assert any(s.packed for p in plan_network(network, BOTH).plans for s in p.segments)
    images = random_input(np.random.default_rng(seed), manifest, 2)
    results = Harness(network, BOTH).run(images)
    assert_counters_predicted(results)
    assert [r.prediction for r in results] == [r.expected_prediction for r in results]
