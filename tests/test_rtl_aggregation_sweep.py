# amaranth: UnusedElaboratable=no
"""AggregationSweep + AggregationCore: one timestep over every position, checked against the
golden aggregation, with the bank cleared (or kept) and an exact cycle cost."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

from rtl_models import run_sim
from spikeforge.golden.network import Leak, Neuron
from spikeforge.golden.neuron import aggregate
from spikeforge.rtl.aggregation import AggregationCore
from spikeforge.rtl.aggregation_sweep import AggregationSweep
from spikeforge.rtl.interfaces import LeakKind, row_layout
from spikeforge.sim.streams import stream_get_all

ADDR_BITS = 5
PSUM_BITS = 20
MEMBRANE_BITS = 12


class SweepTop(wiring.Component):
    """Sweep + core with a partial-sum bank and a membrane memory the test can peek and poke,
    and a counter of the edges from ``start`` to ``done``."""

    def __init__(self, *, lanes):
        self.sweep = AggregationSweep(lanes=lanes, psum_bits=PSUM_BITS,
                                      membrane_bits=MEMBRANE_BITS, addr_bits=ADDR_BITS)
        self.core = AggregationCore(lanes=lanes, psum_bits=PSUM_BITS,
                                    membrane_bits=MEMBRANE_BITS, addr_bits=ADDR_BITS)
        depth = 1 << ADDR_BITS
        self.bank = memory.Memory(shape=row_layout(PSUM_BITS, lanes), depth=depth, init=[])
        self.membranes = memory.Memory(shape=row_layout(MEMBRANE_BITS, lanes), depth=depth,
                                       init=[])
        s, c = self.sweep.signature.members, self.core.signature.members
        super().__init__({"params": s["params"], "neuron": c["params"], "start": s["start"],
                          "done": s["done"], "o_spikes": s["o_spikes"], "cycles": Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.sweep = sweep = self.sweep
        m.submodules.core = core = self.core
        m.submodules.bank = self.bank
        m.submodules.membranes = self.membranes
        for client, mem in ((sweep.bank, self.bank), (sweep.membrane, self.membranes)):
            read, write = mem.read_port(), mem.write_port()
            m.d.comb += [read.addr.eq(client.r_addr), read.en.eq(client.r_en),
                         client.r_data.eq(read.data), write.addr.eq(client.w_addr),
                         write.en.eq(client.w_en), write.data.eq(client.w_data)]
        wiring.connect(m, sweep.o_core, core.i_stream)
        wiring.connect(m, core.o_stream, sweep.i_core)
        wiring.connect(m, sweep.o_spikes, wiring.flipped(self.o_spikes))
        m.d.comb += [sweep.params.eq(self.params), sweep.start.eq(self.start),
                     core.params.eq(self.neuron), self.done.eq(sweep.done)]
        counting = Signal()
        with m.If(self.start & ~sweep.busy):
            m.d.sync += [counting.eq(1), self.cycles.eq(1)]
        with m.Elif(counting):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(sweep.done):
                m.d.sync += counting.eq(0)
        return m


NEURONS = [
    Neuron(300, Leak(), "subtract", "half"),
    Neuron(100, Leak("shift", shift=2), "zero", "zero"),
    Neuron(None, Leak("shift", shift=3)),  # the non-spiking output layer
]


def neuron_params(neuron):
    kind = {"none": LeakKind.NONE, "shift": LeakKind.SHIFT}[neuron.leak.kind]
    return {"threshold": neuron.threshold or 1, "leak_kind": kind,
            "leak_shift": neuron.leak.shift, "leak_factor": 0, "leak_frac_bits": 0,
            "reset_to_zero": int(neuron.reset == "zero"), "fire": int(neuron.threshold is not None),
            "membrane_narrow": 0}


def run_sweep(lanes, currents, membranes, neuron, *, first_step, keep_current, pause=(0,)):
    """One sweep; returns (spike rows, membranes after, bank after, cycles)."""
    dut = SweepTop(lanes=lanes)
    positions = len(currents)
    result = {}

    async def testbench(ctx):
        for p in range(positions):
            ctx.set(dut.bank.data[p], [int(v) for v in currents[p]])
            ctx.set(dut.membranes.data[p], [int(v) for v in membranes[p]])
        ctx.set(dut.neuron, neuron_params(neuron))
        ctx.set(dut.params, {"positions": positions, "first_step": first_step,
                             "keep_current": keep_current,
                             "initial_membrane": neuron.initial_membrane})
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        rows = await stream_get_all(ctx, dut.o_spikes, positions, pause=pause)
        await ctx.tick().until(dut.done)
        await ctx.tick()
        result["spikes"] = [(row.addr, row.spikes) for row in rows]
        result["membranes"] = np.array([[ctx.get(dut.membranes.data[p])[lane]
                                         for lane in range(lanes)] for p in range(positions)])
        result["bank"] = np.array([[ctx.get(dut.bank.data[p])[lane] for lane in range(lanes)]
                                   for p in range(positions)])
        result["cycles"] = ctx.get(dut.cycles)

    run_sim(dut, testbench)
    return result


@pytest.mark.parametrize("lanes", [4, 16])
@pytest.mark.parametrize("neuron", NEURONS, ids=["if-half", "shift-zero", "output"])
@pytest.mark.parametrize("first_step, keep_current", [(1, 0), (0, 0), (0, 1)])
def test_sim_sweep_matches_golden(lanes, neuron, first_step, keep_current):
    rng = np.random.default_rng(lanes + 7 * first_step + 3 * keep_current)
    positions = 11
    currents = rng.integers(-700, 700, (positions, lanes))
    low, high = -(1 << (MEMBRANE_BITS - 1)), (1 << (MEMBRANE_BITS - 1)) - 1
    membranes = rng.integers(low, high + 1, (positions, lanes))
    result = run_sweep(lanes, currents, membranes, neuron, first_step=first_step,
                       keep_current=keep_current)
    before = np.full_like(membranes, neuron.initial_membrane) if first_step else membranes
    want_v, want_s = aggregate(before.astype(np.int64), currents.astype(np.int64), neuron,
                               MEMBRANE_BITS)
    np.testing.assert_array_equal(result["membranes"], want_v)
    if want_s is None:
        want_s = np.zeros_like(currents)
    assert result["spikes"] == [(p, sum(int(want_s[p, lane]) << lane for lane in range(lanes)))
                                for p in range(positions)]
    np.testing.assert_array_equal(result["bank"], currents if keep_current else 0)
    # The start cycle, one row per cycle, the core's latency, the done cycle.
    assert result["cycles"] == 1 + positions + AggregationCore.LATENCY + 1


def test_sim_sweep_under_spike_back_pressure():
    rng = np.random.default_rng(3)
    lanes, positions = 4, 9
    currents = rng.integers(-400, 400, (positions, lanes))
    membranes = rng.integers(-100, 100, (positions, lanes))
    neuron = NEURONS[0]
    result = run_sweep(lanes, currents, membranes, neuron, first_step=0, keep_current=0,
                       pause=(1, 1, 0))
    want_v, _ = aggregate(membranes.astype(np.int64), currents.astype(np.int64), neuron,
                          MEMBRANE_BITS)
    np.testing.assert_array_equal(result["membranes"], want_v)
    assert [addr for addr, _ in result["spikes"]] == list(range(positions))


def test_init_wrong_lanes():
    with pytest.raises(TypeError, match=r"^Lane count must be a positive integer, not 0$"):
        AggregationSweep(lanes=0, psum_bits=8, membrane_bits=8, addr_bits=4)
