"""rtl/layout.py on its own: the descriptors, segments and bitmaps ``plan_network`` finds for
small directed networks, the space-to-depth and weight-packing mappings, the refusals, and
the helpers (weights, values, neurons, pixels)."""

import numpy as np

from spikeforge.golden import network_from_parts
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.layout import (SLOTS, Segment, descriptor_neuron, descriptor_values,
                                   pixel_count, pixel_image, plan_network, segment_bias,
                                   segment_weight_bits, segment_weights, signed_bits)

NEURON = {"threshold": 5, "reset": "subtract", "v_init": "zero"}


def conv(name, source, channels, out_shape, *, kernel=3, padding=1, output="spikes"):
    return {"name": name, "type": "conv2d", "inputs": [source], "output": output,
            "out_channels": channels, "kernel": [kernel] * 2, "stride": [1, 1],
            "padding": [padding] * 2, "out_shape": out_shape, "weight_bits": 4,
            **({"neuron": NEURON if output == "spikes" else {}} if output != "current" else {})}


POOL = {"name": "mp", "type": "maxpool2d", "output": "spikes", "kernel": [2, 2],
        "out_shape": [4, 3, 3]}
FLAT = {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [36]}
FC = {"name": "fc", "type": "linear", "output": "membrane", "out_features": 3,
      "out_shape": [3], "weight_bits": 4, "neuron": {}}


def network(name, layers, arrays, in_shape=(1, 6, 6)):
    manifest = {"format": "spikeforge-bundle", "format_version": 1, "name": name,
                "timesteps": 2, "membrane_bits": 16,
                "input": {"shape": list(in_shape), "bits": 8, "raw_min": 0.0, "raw_max": 1.0},
                "layers": layers}
    return network_from_parts(manifest, arrays)


def chain(*, bias=False):
    """input 1x6x6 -> c1 (direct conv 4x3x3, padding 1) -> mp (2x2) -> flat -> fc (3)."""
    rng = np.random.default_rng(3)
    c1 = conv("c1", "input", 4, [4, 6, 6])
    arrays = {"c1.weight": rng.integers(-7, 8, (4, 1, 3, 3)).astype(np.int8),
              "fc.weight": rng.integers(-7, 8, (3, 36)).astype(np.int8)}
    if bias:
        c1["bias_bits"] = 8
        arrays["c1.bias"] = np.array([1, -2, 3, -4], np.int32)
    return network("chain", [c1, POOL, FLAT, FC], arrays)


def test_plan_chain():
    layout = plan_network(chain(), AcceleratorConfig(pes=4))
    assert layout.problems == () and layout.bitmaps == 2 and layout.pixel_depth_pad == 0
    c1, mp, fc = layout.plans
    assert (c1.name, c1.direct, c1.pool, c1.output, c1.groups) == ("c1", True, False, False, 1)
    assert (c1.channels, c1.depth, c1.height, c1.width, c1.positions) == (4, 1, 6, 6, 36)
    assert c1.segments == (Segment("mac", "c1", None, (1, 1, 6, 6), (1, 3, 3), (1, 1, 1),
                                   (0, 1, 1), (1, 6, 6)),)
    assert (mp.pool, mp.direct, mp.positions) == (True, False, 9)
    assert mp.segments == (Segment("pool", "mp", "c1", (4, 1, 6, 6), (1, 2, 2), (1, 2, 2),
                                   (0, 0, 0), (1, 3, 3), weights="none"),)
    # The linear layer reads mp's bitmap through the flatten: a 4 x 3 x 3 plane.
    assert fc.output and fc.segments == (Segment("conv", "fc", "mp", (4, 1, 3, 3), (1, 1, 1),
                                                 (1, 1, 1), (0, 0, 0), (1, 1, 1),
                                                 linear=True),)
    # c1's bitmap is still read by mp, so mp writes the next one; the output layer writes none.
    assert [(p.out_sel, p.in_sels) for p in layout.plans] == [(0, (0,)), (1, (0,)), (0, (1,))]
    assert [p.sources for p in layout.plans] == [(), ("c1",), ("mp",)]
    assert [p.rows_per_group for p in layout.plans] == [9, 0, 36]
    assert [p.memory_rows_per_group for p in layout.plans] == [9, 0, 36]


def test_plan_groups_follow_the_pes():
    layout = plan_network(chain(), AcceleratorConfig(pes=2))
    assert [p.groups for p in layout.plans] == [2, 2, 2]


def test_plan_space_to_depth_fuses_the_pool():
    network = chain(bias=True)
    layout = plan_network(network, AcceleratorConfig(pes=16, space_to_depth=True))
    c1, fc = layout.plans
    assert (c1.pooled, c1.bitmap_layers, c1.channels, c1.height, c1.width) == (
        "mp", ("c1", "mp"), 4 * SLOTS, 3, 3)
    assert c1.segments == (Segment("mac", "c1", None, (1, 1, 6, 6), (1, 4, 4), (1, 2, 2),
                                   (0, 1, 1), (1, 3, 3), weights="space_to_depth"),)
    assert fc.segments[0].source == "mp" and fc.in_sels == (0,) and layout.bitmaps == 1
    weight = segment_weights(network, c1.segments[0])
    original = network.layer("c1").weight
    assert weight.shape == (16, 1, 1, 4, 4)
    # Lane 4c + 2dy + dx: channel c's kernel shifted by (dy, dx), zeros elsewhere.
    np.testing.assert_array_equal(weight[4 * 2 + 3, 0, 0, 1:, 1:], original[2, 0])
    assert not weight[4 * 2 + 3, 0, 0, 0].any() and not weight[4 * 2 + 3, 0, 0, :, 0].any()
    np.testing.assert_array_equal(weight[4 * 1 + 0, 0, 0, :3, :3], original[1, 0])
    assert segment_bias(network, c1.segments[0]).tolist() == [1] * 4 + [-2] * 4 + [3] * 4 + [
        -4] * 4


def test_plan_weight_packing_halves_narrow_rows():
    network = chain()
    narrow = segment_weight_bits(network, plan_network(network, AcceleratorConfig(
        pes=4)).plans[2].segments[0])
    assert narrow == 4  # weights -7..7
    plans = plan_network(network, AcceleratorConfig(pes=4, weight_bits=8,
                                                    weight_packing=True)).plans
    # Only spike-driven conv segments are packed, never the first layer's.
    assert [s.packed for p in plans for s in p.segments] == [False, False, True]
    assert [p.memory_rows_per_group for p in plans] == [9, 0, 18]


def test_segment_passes():
    plane = Segment("conv", "c", "x", (2, 4, 5, 5), (3, 3, 3), (2, 1, 1), (1, 1, 1), (2, 5, 5))
    # (od, kd, d = od * 2 - 1 + kd); planes -1 and 4 are outside and skipped by the sequencer.
    assert plane.passes == [(0, 0, -1), (0, 1, 0), (0, 2, 1), (1, 0, 1), (1, 1, 2), (1, 2, 3)]
    assert plane.rows_per_group == 2 * 27
    mac = Segment("mac", "c", None, (1, 4, 5, 5), (3, 3, 3), (2, 1, 1), (1, 1, 1), (2, 5, 5))
    assert mac.passes == [(0, 0, 0), (1, 0, 0)]
    assert Segment("pool", "p", "x", (2, 1, 4, 4), (1, 2, 2), (1, 2, 2), (0, 0, 0),
                   (1, 2, 2), weights="none").rows_per_group == 0


def test_one_hot_weights_carry_the_scale():
    layers = [conv("c1", "input", 2, [2, 6, 6]),
              {"name": "add", "type": "add", "inputs": ["c1", "c1"], "scales": [2, -3],
               "output": "spikes", "out_shape": [2, 6, 6], "neuron": NEURON},
              {"name": "flat", "type": "flatten", "output": "spikes", "out_shape": [72]},
              {**FC, "out_features": 2, "out_shape": [2]}]
    arrays = {"c1.weight": np.ones((2, 1, 3, 3), np.int8),
              "fc.weight": np.ones((2, 72), np.int8)}
    net = network("adds", layers, arrays)
    add = plan_network(net, AcceleratorConfig(pes=4)).plans[1]
    assert [(s.weights, s.scale, s.kernel) for s in add.segments] == [
        ("one_hot", 2, (1, 1, 1)), ("one_hot", -3, (1, 1, 1))]
    np.testing.assert_array_equal(segment_weights(net, add.segments[1])[:, :, 0, 0, 0],
                                  -3 * np.eye(2))
    assert segment_bias(net, add.segments[0]) is None


def test_refusals():
    """What the golden model accepts but the RTL does not run becomes a problem sentence (the
    golden model already refuses a pool or flatten of the pixels)."""
    two = network("two_direct", [
        conv("a", "input", 2, [2, 6, 6], output="current"),
        conv("b", "input", 2, [2, 6, 6], output="current"),
        {"name": "add", "type": "add", "inputs": ["a", "b"], "scales": [1, 1],
         "output": "spikes", "out_shape": [2, 6, 6], "neuron": NEURON},
        {**FLAT, "out_shape": [72]}, FC],
        {"a.weight": np.ones((2, 1, 3, 3), np.int8), "b.weight": np.ones((2, 1, 3, 3), np.int8),
         "fc.weight": np.ones((3, 72), np.int8)})
    assert plan_network(two, AcceleratorConfig(pes=4)).problems == (
        "layer 'add' adds more than one direct-encoded current, which the RTL does not run",)


def test_descriptor_values_and_neurons():
    layout = plan_network(chain(), AcceleratorConfig(pes=16, space_to_depth=True))
    plan = layout.plans[0]
    values = np.arange(2 * 4 * 6 * 6).reshape(2, 4, 6, 6)  # (T, C, H, W)
    held = descriptor_values(plan, values)
    assert held.shape == (2, 16, 9)
    # Lane 4c + 2dy + dx, position Y * 3 + X holds (c, 2Y + dy, 2X + dx).
    assert held[1, 4 * 3 + 2, 1 * 3 + 2] == values[1, 3, 3, 4]
    assert descriptor_neuron(plan, 4 * 3 + 2, 1 * 3 + 2) == (3, 3, 4)
    plain = plan_network(chain(), AcceleratorConfig(pes=4)).plans[0]
    assert descriptor_values(plain, values).shape == (2, 4, 36)
    assert descriptor_neuron(plain, 2, 13) == (2, 2, 1)


def test_pixels_and_widths():
    net = chain()
    layout = plan_network(net, AcceleratorConfig(pes=4))
    image = np.arange(36).reshape(1, 6, 6)
    assert pixel_image(net, layout, image).tolist() == list(range(36))
    assert pixel_count(net, layout) == 36
    assert [signed_bits(v) for v in (0, 1, -1, 7, -8, 8, 127, -128)] == [1, 2, 1, 4, 4, 5, 8, 8]
