# amaranth: UnusedElaboratable=no
"""Cycle model: tap counts, the scan chain recurrence, and equality with the RTL's cycle
counter on random networks (direct conv and linear inputs, avg- and max-pool, flatten, strides,
padding, channel groups tiled over 4 and 16 PEs)."""

import numpy as np
import pytest

from counter_checks import assert_counters_predicted
from random_networks import random_input, random_network
from spikeforge.golden import network_from_parts
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.cycle_model import chain_cycles, event_taps
from spikeforge.rtl.layout import Segment
from spikeforge.sim.harness import Harness


def _plan(kernel, stride, padding, out, linear=False):
    """A 2D segment scanning a 1x8x8 map (depth 1)."""
    return Segment("conv", "l", "s", (1, 1, 8, 8), (1, *kernel), (1, *stride), (0, *padding),
                   (1, out, out), linear=linear)


def test_event_taps():
    same = _plan((3, 3), (1, 1), (1, 1), 8)
    assert [event_taps(same, y, x) for y, x in ((0, 0), (0, 4), (4, 4), (7, 7))] == [4, 6, 9, 4]
    strided = _plan((3, 3), (2, 2), (1, 1), 4)  # the digits conv2
    assert [event_taps(strided, y, x) for y, x in ((0, 0), (1, 1), (7, 7), (2, 3))] == \
        [1, 4, 1, 2]
    assert event_taps(_plan((1, 1), (1, 1), (0, 0), 1, linear=True), 3, 5) == 1


def test_chain_cycles():
    # No event: the marker is offered 1 cycle after start, accepted, 3 tap-generator
    # stages, 3 PE-array stages.
    assert chain_cycles([(0, None)]) == 1 + 3 + 3
    assert chain_cycles([(5, None)]) == 6 + 3 + 3      # 5 empty words first
    # Back to back: the marker leaves the tap generator LATENCY + sum of max(1, taps) after
    # the first event (tap_generator docstring), then the PE array's LATENCY.
    assert chain_cycles([(0, 4), (0, 1), (0, 0), (0, None)]) == 1 + 3 + 4 + 1 + 1 + 3
    # Long events hold the scanner back; the marker still follows the last tap directly.
    assert chain_cycles([(0, 9)] * 5 + [(0, None)]) == 1 + 3 + 45 + 3
    # Two empty words between two 1-tap events: the second arrives 2 cycles later than it
    # would back to back, and the generator, idle by then, passes the delay on.
    assert chain_cycles([(0, 1), (2, 1), (0, None)]) == 1 + 2 + 3 + 1 + 1 + 3
    # ... but behind a 9-tap event the same gap is hidden.
    assert chain_cycles([(0, 9), (2, 1), (0, None)]) == 1 + 3 + 9 + 1 + 3


CONFIG = {"membrane_bits": 32, "psum_bits": 48, "leak_multiplier": True, "max_positions": 64,
          "weight_depth": 512, "spike_memory_bits": 8192, "max_in_channels": 64,
          "max_out_channels": 64, "max_feature_size": 16}


@pytest.mark.parametrize("pes", [4, 16])
@pytest.mark.parametrize("seed, template", [
    (0, "conv2d"), (7, "conv2d"), (11, "conv2d"), (13, "conv2d"),    # conv, avg-pool, flatten
    (4, "conv2d"), (8, "conv2d"), (10, "conv2d"),                    # max-pool
    (5, "linear"), (14, "linear")])
def test_sim_equals_rtl(seed, template, pes):
    manifest, arrays = random_network(seed, template)
    network = network_from_parts(manifest, arrays)
    harness = Harness(network, AcceleratorConfig(pes=pes, **CONFIG))
    images = random_input(np.random.default_rng(seed), manifest, 2)
    results = harness.run(images)
    assert_counters_predicted(results)
