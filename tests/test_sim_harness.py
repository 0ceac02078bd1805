# amaranth: UnusedElaboratable=no
"""Scoreboard harness: a clean run passes, an injected wrong value (in the golden trace, or
from a broken block) is reported with the right cycle, layer, timestep and neuron (and a
waveform), and a hang fails fast."""

import numpy as np
import pytest
from amaranth.hdl import Signal

from counter_checks import assert_counters_predicted
from random_networks import random_input, random_network
from spikeforge.golden import network_from_parts
from spikeforge.rtl import top as top_module
from spikeforge.rtl.aggregation_sweep import AggregationSweep
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.sim.harness import Harness, Mismatch
from spikeforge.sim.streams import StreamTimeout

CONFIG = AcceleratorConfig(pes=4, membrane_bits=32, psum_bits=48, leak_multiplier=True,
                           max_positions=64, weight_depth=512, spike_memory_bits=8192,
                           max_in_channels=64, max_out_channels=64, max_feature_size=16)


@pytest.fixture(scope="module")
def case():
    manifest, arrays = random_network(7, "conv2d")  # conv2d -> avgpool2d -> conv2d (output)
    network = network_from_parts(manifest, arrays)
    images = random_input(np.random.default_rng(7), manifest, 1)
    return network, images


def _clean(case):
    network, images = case
    harness = Harness(network, CONFIG)
    golden = harness.expected(images)
    result, = harness.run(images, golden=golden, record_writes=True)
    return harness, golden, result


def test_sim_clean(case):
    _, golden, result = _clean(case)
    assert_counters_predicted([result])
    assert result.output_membrane == golden.output_membrane[0].tolist()
    assert len(result.membrane_writes) > 0


@pytest.mark.parametrize("pick", [0.3, 0.8])
def test_sim_injected_membrane(case, tmp_path, pick):
    harness, golden, result = _clean(case)
    cycle, layer, step, group, position = result.membrane_writes[
        int(pick * len(result.membrane_writes))]
    plan = next(p for p in harness.program.layers if p.name == layer)
    channel = group * CONFIG.pes
    y, x = divmod(position, plan.width)
    trace = golden.traces[layer].membrane
    index = (step - 1, 0, channel, y, x)[:trace.ndim]
    good = int(trace[index])
    trace[index] = good + 1  # the golden side now disagrees with one RTL write
    vcd = tmp_path / "mismatch.vcd"
    with pytest.raises(Mismatch) as info:
        harness.run(case[1], golden=golden, vcd=vcd)
    mismatch = info.value
    assert (mismatch.image, mismatch.cycle, mismatch.layer, mismatch.what, mismatch.timestep,
            mismatch.neuron, mismatch.expected, mismatch.got) == (
        0, cycle, layer, "membrane", step, (channel, y, x), good + 1, good)
    assert mismatch.vcd == vcd and vcd.stat().st_size > 0
    assert str(mismatch) == (
        f"image 0, cycle {cycle}: layer {layer!r}, timestep {step}, neuron (channel, y, x) = "
        f"({channel}, {y}, {x}): membrane expected {good + 1}, got {good} (waveform: {vcd})")


def test_sim_injected_spike(case):
    harness, golden, _ = _clean(case)
    first = harness.program.layers[0]
    spikes = golden.traces[first.name].spikes
    t, c, y, x = spikes.shape[0] - 1, spikes.shape[2] - 1, spikes.shape[3] - 1, 0
    spikes[t, 0, c, y, x] ^= 1
    with pytest.raises(Mismatch, match=rf"^image 0, cycle \d+: layer {first.name!r}, timestep "
                                       rf"{t + 1}, neuron \(channel, y, x\) = \({c}, {y}, {x}\):"
                                       rf" spike expected {spikes[t, 0, c, y, x]}, got "
                                       rf"{spikes[t, 0, c, y, x] ^ 1}$"):
        harness.run(case[1], golden=golden)


def test_sim_output_membrane(case):
    harness, golden, result = _clean(case)
    golden.output_membrane[0, 1] += 5
    with pytest.raises(Mismatch, match=rf"^image 0, cycle {result.cycles}: layer "
                                       rf"'{harness.program.layers[-1].name}', neuron .*: output "
                                       rf"membrane expected"):
        harness.run(case[1], golden=golden)


def test_sim_timeout(case):
    network, images = case
    harness = Harness(network, CONFIG, max_cycles=50)
    with pytest.raises(StreamTimeout, match=r"^image 0: the accelerator did not finish within "
                                            r"50 cycles$"):
        harness.run(images)


class BrokenSweep(AggregationSweep):
    """Writes lane 0 of the ``WRONG``-th membrane row (counted from reset) one too high."""

    WRONG = 0

    def elaborate(self, platform):
        m = super().elaborate(platform)
        writes = Signal(32)
        with m.If(self.membrane.w_en):
            m.d.sync += writes.eq(writes + 1)
            with m.If(writes == self.WRONG):
                # A later assignment wins: only this lane of this one row is wrong.
                m.d.comb += self.membrane.w_data[0].eq(self.i_core.payload.membrane[0] + 1)
        return m


def test_sim_broken_block(case, monkeypatch):
    harness, golden, result = _clean(case)
    wrong = len(result.membrane_writes) // 2
    cycle, layer, step, group, position = result.membrane_writes[wrong]
    plan = next(p for p in harness.program.layers if p.name == layer)
    y, x = divmod(position, plan.width)
    channel = group * CONFIG.pes
    good = int(golden.traces[layer].membrane[(step - 1, 0, channel, y, x)[
        :golden.traces[layer].membrane.ndim]])
    monkeypatch.setattr(BrokenSweep, "WRONG", wrong)
    monkeypatch.setattr(top_module, "AggregationSweep", BrokenSweep)
    with pytest.raises(Mismatch) as info:
        harness.run(case[1], golden=golden)
    mismatch = info.value
    assert (mismatch.cycle, mismatch.layer, mismatch.timestep, mismatch.neuron,
            mismatch.expected, mismatch.got) == (cycle, layer, step, (channel, y, x), good,
                                                 good + 1)
