"""rtl/program.py on its own: the descriptor table, weight and bias rows and pixels that
``build_program`` writes for a small directed network, and every refusal message."""

import numpy as np
import pytest

from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.program import ProgramError, build_program
from spikeforge.rtl.sizing import MemorySizes
from test_rtl_layout import chain, conv, network

CONFIG = AcceleratorConfig(pes=4)


def test_build_chain():
    network = chain(bias=True)
    program = build_program(network, CONFIG, MemorySizes())
    assert [p.name for p in program.layers] == ["c1", "mp", "fc"]
    rows = program.descriptors
    # The three layer rows, then one segment row each (seg_base points at them).
    assert [list(row) for row in rows] == [["layer"]] * 3 + [["segment"]] * 3
    c1, mp, fc = (row["layer"] for row in rows[:3])
    assert {k: c1[k] for k in ("direct", "pool", "last", "output", "weight_base",
                               "group_stride", "positions", "groups", "out_words",
                               "bias_base", "seg_base", "seg_count", "timesteps")} == {
        "direct": 1, "pool": 0, "last": 0, "output": 0, "weight_base": 0, "group_stride": 9,
        "positions": 36, "groups": 1, "out_words": 36, "bias_base": 0, "seg_base": 3,
        "seg_count": 1, "timesteps": 2}
    # A max-pool has no weights, no bias rows and no neurons.
    assert (mp["pool"], mp["weight_base"], mp["group_stride"], mp["bias_base"],
            mp["neuron"], mp["seg_base"]) == (1, 9, 0, 1, {"fire": 0}, 4)
    assert (fc["last"], fc["output"], fc["weight_base"], fc["group_stride"], fc["bias_base"],
            fc["seg_base"]) == (1, 1, 9, 36, 1, 5)
    # Weight rows: c1's (c, ky, kx), then fc's one per feature; lanes past the channels are 0.
    assert len(program.weights) == 9 + 36
    weight = network.layer("c1").weight
    assert program.weights[(0 * 3 + 1) * 3 + 2] == weight[:, 0, 1, 2].tolist()
    assert program.weights[9 + 17] == network.layer("fc").weight[:, 17].tolist() + [0]
    # One bias row per layer and group with neurons: c1's, then fc's (no bias: zeros).
    assert program.biases == [[1, -2, 3, -4], [0, 0, 0, 0]]
    segment = rows[3]["segment"]
    assert (segment["mac"], segment["in_channels"], segment["geometry"]["kernel_h"],
            segment["geometry"]["pad_w"], segment["geometry"]["out_h"]) == (1, 1, 3, 1, 6)
    assert rows[5]["segment"]["in_sel"] == 1 and rows[4]["segment"]["in_sel"] == 0
    image = np.arange(36).reshape(1, 6, 6) % 256
    assert program.pixels(image) == list(range(36))
    assert program.pixel_bits == 8 and program.layout.bitmaps == 2


def test_wrong_network():
    with pytest.raises(TypeError, match=r"^build_program\(\) needs a spikeforge.golden.Network, "
                                        r"not 'chain'$"):
        build_program("chain", CONFIG, MemorySizes())


def test_wrong_fit():
    config = AcceleratorConfig(pes=4, max_positions=16)
    with pytest.raises(ProgramError, match=r"^network 'chain' does not fit the accelerator: "
                                           r"layer 'c1' "):
        build_program(chain(), config, MemorySizes())


@pytest.mark.parametrize("sizes, problem", [
    (MemorySizes(pixel_bits=4), "the input has 8-bit pixels, the pixel memory holds 4"),
    (MemorySizes(pixel_depth=16), "the input needs 36 pixel words, the pixel memory holds 16"),
    (MemorySizes(bias_depth=1), "layer 'fc' needs bias rows 1..1, the bias memory has 1"),
    (MemorySizes(max_layers=4), "the network needs 6 descriptor rows (3 layers and 3 "
                                "segments), the table has 4"),
])
def test_wrong_sizes(sizes, problem):
    with pytest.raises(ProgramError) as info:
        build_program(chain(), CONFIG, sizes)
    assert str(info.value) == f"network 'chain' cannot run on the accelerator: {problem}"


def test_wrong_output_rows():
    """The output layer keeps ``groups * positions`` membrane rows for the host."""
    net = network("conv_out", [conv("c1", "input", 4, [4, 6, 6]),
                               conv("c2", "c1", 6, [6, 6, 6], output="membrane")],
                  {"c1.weight": np.ones((4, 1, 3, 3), np.int8),
                   "c2.weight": np.ones((6, 4, 3, 3), np.int8)})
    config = AcceleratorConfig(pes=4, max_positions=64)
    with pytest.raises(ProgramError, match=r"cannot run on the accelerator: layer 'c2' keeps 72 "
                                           r"membrane rows for the host, the membrane memory "
                                           r"has 64$"):
        build_program(net, config, MemorySizes())
