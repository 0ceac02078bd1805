# amaranth: UnusedElaboratable=no
"""conv3d on the RTL (docs/conv3d.md): the plane-by-plane mapping (passes, skipped planes,
kernel-plane-major weight rows, the depth-padded pixel image), the hybrid 3D/2D fold
(flatten of channels and depth into a conv2d), a linear layer on a cube, the harness naming a
3D neuron, and zero mismatches with exact cycles on hand-built and random networks with the
reference MAC and the PIM block, 4 and 16 PEs."""

from dataclasses import replace

import numpy as np
import pytest

from counter_checks import assert_counters_predicted
from random_networks import random_input, random_network
from spikeforge.golden import network_from_parts
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.layout import pixel_image, plan_network
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sizing import MemorySizes
from spikeforge.sim.harness import Harness, Mismatch

CONFIG = dict(membrane_bits=32, psum_bits=48, leak_multiplier=True, max_positions=256,
              weight_depth=2048, spike_memory_bits=16384, max_in_channels=64,
              max_out_channels=64, max_feature_size=16)
SIZES = MemorySizes(bias_depth=64, max_layers=32, pixel_depth=4096, pixel_bits=4)


def _conv(name, kind, channels, kernel, stride, padding, out_shape, threshold, **extra):
    return {"name": name, "type": kind, "output": "spikes", "out_channels": channels,
            "kernel": kernel, "stride": stride, "padding": padding, "out_shape": out_shape,
            "weight_bits": 4, "neuron": {"threshold": threshold, "reset": "subtract",
                                         "v_init": "half"}, **extra}


def cube_network():
    """(2, 5, 4, 4) 4-bit input -> direct conv3d (depth stride 2, padding 1) -> conv3d (depth
    padding 1: skipped planes) -> flatten(0, 1) -> conv2d (the fold) -> flatten -> linear."""
    layers = [
        _conv("c3a", "conv3d", 3, [3, 3, 3], [2, 1, 1], [1, 1, 1], [3, 3, 4, 4], 40),
        _conv("c3b", "conv3d", 4, [2, 3, 3], [1, 2, 2], [1, 1, 1], [4, 4, 2, 2], 3),
        {"name": "fold", "type": "flatten", "output": "spikes", "start_dim": 0, "end_dim": 1,
         "out_shape": [16, 2, 2]},
        _conv("c2", "conv2d", 5, [2, 2], [1, 1], [0, 0], [5, 1, 1], 2),
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [5]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_features": 3,
         "out_shape": [3], "weight_bits": 4, "neuron": {}},
    ]
    rng = np.random.default_rng(3)
    arrays = {"c3a.weight": rng.integers(-3, 8, (3, 2, 3, 3, 3)).astype(np.int8),
              "c3a.bias": rng.integers(-20, 20, 3).astype(np.int32),
              "c3b.weight": rng.integers(-2, 8, (4, 3, 2, 3, 3)).astype(np.int8),
              "c2.weight": rng.integers(-3, 8, (5, 16, 2, 2)).astype(np.int8),
              "fc.weight": rng.integers(-8, 8, (3, 5)).astype(np.int8)}
    layers[0]["bias_bits"] = 8
    return network_from_parts(_manifest("cube", (2, 5, 4, 4), layers), arrays)


def cube_linear_network():
    """(1, 4, 3, 3) -> direct conv3d (valid) -> flatten -> linear: a linear layer reading a
    cube numbers its features c * D * H * W + d * H * W + y * W + x."""
    layers = [
        _conv("c3", "conv3d", 2, [2, 2, 2], [1, 1, 1], [0, 0, 0], [2, 3, 2, 2], 30),
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [24]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_features": 4,
         "out_shape": [4], "weight_bits": 4, "neuron": {}},
    ]
    rng = np.random.default_rng(4)
    arrays = {"c3.weight": rng.integers(-2, 8, (2, 1, 2, 2, 2)).astype(np.int8),
              "fc.weight": rng.integers(-8, 8, (4, 24)).astype(np.int8)}
    return network_from_parts(_manifest("cube_linear", (1, 4, 3, 3), layers), arrays)


def _manifest(name, shape, layers):
    return {"format": "spikeforge-bundle", "format_version": 1, "name": name,
            "timesteps": 3, "membrane_bits": 16,
            "input": {"shape": list(shape), "bits": 4, "raw_min": 0.0, "raw_max": 1.0},
            "layers": layers}


def _images(network, count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 16, (count, *network.input.shape))


def test_layout_planes_and_fold():
    layout = plan_network(cube_network(), AcceleratorConfig(pes=4, **CONFIG))
    assert layout.problems == () and layout.pixel_depth_pad == 1
    c3a, c3b, c2, fc = layout.plans
    (mac,), (scan,), (fold,), (linear,) = (p.segments for p in layout.plans)
    assert (mac.kind, mac.map, mac.kernel, mac.stride, mac.out) == (
        "mac", (2, 5, 4, 4), (3, 3, 3), (2, 1, 1), (3, 4, 4))
    assert mac.passes == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]  # one run per output plane
    # Output plane od reads input planes 2 * od - 1 + kd; planes -1 and 5 are skipped.
    assert (scan.map, scan.kernel, scan.out) == ((3, 3, 4, 4), (2, 3, 3), (4, 2, 2))
    assert [d for _, _, d in scan.passes] == [-1, 0, 0, 1, 1, 2, 2, 3]
    # flatten(0, 1) then conv2d: a conv3d whose kernel spans the 4 planes of c3b.
    assert (fold.map, fold.kernel, fold.out, fold.weights) == (
        (4, 4, 2, 2), (4, 2, 2), (1, 1, 1), "folded")
    assert (linear.map, linear.linear) == ((5, 1, 1, 1), True)
    assert (c3a.positions, c3b.positions, c3b.spatial) == (48, 16, (4, 2, 2))


def test_weight_rows_kernel_plane_major():
    network = cube_network()
    program = build_program(network, AcceleratorConfig(pes=4, **CONFIG), SIZES)
    base = program.descriptors[1]["layer"]["weight_base"]
    weight = network.layer("c3b").weight  # (4, 3, 2, 3, 3): one group of 4 lanes
    for kd, c, ky, kx in ((0, 0, 0, 0), (1, 2, 1, 0), (0, 2, 2, 2), (1, 0, 2, 1)):
        row = program.weights[base + (kd * 3 + c) * 9 + ky * 3 + kx]
        assert row == weight[:, c, kd, ky, kx].tolist()
    segment = program.descriptors[program.descriptors[1]["layer"]["seg_base"]]["segment"]
    assert (segment["kd_rows"], segment["depth_pad"], segment["plane_words"],
            segment["in_words"]) == (27, 1, 16, 48)
    # The fold: input channel c * D + d of c2 is kernel plane d of channel c.
    base = program.descriptors[2]["layer"]["weight_base"]
    c2 = network.layer("c2").weight  # (5, 16, 2, 2); groups of 4 lanes: 0..3 and 4
    assert program.weights[base + (3 * 4 + 1) * 4 + 1 * 2 + 0][:4] == \
        c2[:4, 1 * 4 + 3, 1, 0].tolist()


def test_pixel_image_pads_depth():
    network = cube_network()
    layout = plan_network(network, AcceleratorConfig(pes=4, **CONFIG))
    image = _images(network, 1, 0)[0]
    stored = pixel_image(network, layout, image).reshape(7, 2, 4, 4)  # (D + 2, C, H, W)
    assert (stored[0] == 0).all() and (stored[6] == 0).all()
    np.testing.assert_array_equal(stored[1:6], np.moveaxis(image, 1, 0))


@pytest.mark.parametrize("pes, first_layer", [(4, "mac"), (16, "pim")])
def test_sim_cube(pes, first_layer):
    network = cube_network()
    harness = Harness(network, AcceleratorConfig(pes=pes, first_layer=first_layer, **CONFIG),
                      sizes=SIZES)
    images = _images(network, 2, pes)
    golden = harness.expected(images)
    assert golden.spikes["c3b"].sum() > 0 and golden.spikes["c2"].sum() > 0  # not silent
    results = harness.run(images, golden=golden)
    assert_counters_predicted(results)
    assert [r.output_membrane for r in results] == golden.output_membrane.tolist()


def test_sim_linear_on_a_cube():
    network = cube_linear_network()
    harness = Harness(network, AcceleratorConfig(pes=4, **CONFIG), sizes=SIZES)
    results = harness.run(_images(network, 2, 5))
    assert_counters_predicted(results)


@pytest.mark.parametrize("pes", [4, 16])
@pytest.mark.parametrize("seed", [0, 3, 5, 9, 12])
def test_sim_random_conv3d(seed, pes):
    manifest, arrays = random_network(seed, "conv3d")
    network = network_from_parts(manifest, arrays)
    config = AcceleratorConfig(pes=pes, first_layer="pim" if seed % 2 else "mac", **CONFIG)
    harness = Harness(network, config, sizes=replace(SIZES, pixel_bits=16))
    results = harness.run(random_input(np.random.default_rng(seed), manifest, 2))
    assert_counters_predicted(results)


def test_mismatch_names_a_3d_neuron():
    network = cube_network()
    harness = Harness(network, AcceleratorConfig(pes=4, **CONFIG), sizes=SIZES)
    images = _images(network, 1, 4)
    golden = harness.expected(images)
    golden.traces["c3b"].membrane[1, 0, 2, 3, 1, 0] += 1  # timestep 2, (c, d, y, x) (2, 3, 1, 0)
    with pytest.raises(Mismatch, match=r"layer 'c3b', timestep 2, neuron \(channel, d, y, x\) "
                                       r"= \(2, 3, 1, 0\): membrane expected"):
        harness.run(images, golden=golden)


def test_fits_refuses_a_pool_of_folded_depth():
    layers = [
        _conv("c3", "conv3d", 2, [1, 1, 1], [1, 1, 1], [0, 0, 0], [2, 2, 4, 4], 5),
        {"name": "fold", "type": "flatten", "output": "spikes", "start_dim": 0, "end_dim": 1,
         "out_shape": [4, 4, 4]},
        {"name": "mp", "type": "maxpool2d", "output": "spikes", "kernel": [2, 2],
         "out_shape": [4, 2, 2]},
        {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [16]},
        {"name": "fc", "type": "linear", "output": "membrane", "out_features": 2,
         "out_shape": [2], "weight_bits": 4, "neuron": {}},
    ]
    arrays = {"c3.weight": np.ones((2, 1, 1, 1, 1), np.int8),
              "fc.weight": np.ones((2, 16), np.int8)}
    network = network_from_parts(_manifest("fold_pool", (1, 2, 4, 4), layers), arrays)
    assert AcceleratorConfig(pes=4, **CONFIG).fits(network).reasons == (
        "layer 'mp' reads a 4x4x4 view of a 2x2x4x4 spike map, which the RTL does not scan",)


def test_fits_scanned_height_of_a_cube():
    # The linear layer scans the (2, 3, 2, 2) cube as a 2 x 6 x 2 map: 6 rows > 5.
    network = cube_linear_network()
    assert AcceleratorConfig(pes=4, **{**CONFIG, "max_feature_size": 5}).fits(
        network).reasons == ("layer 'fc' scans its input as a 6x2 map, the config allows 5 "
                             "per side (1 over)",)
