# amaranth: UnusedElaboratable=no
"""Sequencer on its own: the descriptor table of a small directed program in a memory, every
datapath block a stub that answers its start strobe after a fixed latency. The strobes, their
order, the phase ``k`` and parameters they carry, the swaps, the per-layer spike counts and the
documented phase cost are checked against the module docstring."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory, wiring

from rtl_models import run_sim
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.program import build_program
from spikeforge.rtl.sequencer import (Sequencer, descriptor_widths, layer_layout,
                                      segment_layout)
from spikeforge.rtl.sizing import MemorySizes
from test_rtl_layout import chain

CONFIG = AcceleratorConfig(pes=4)
SIZES = MemorySizes()
#: Cycles from a start strobe to its done strobe (the scanner's end marker one cycle before
#: the PE array's ``done``).
LATENCY = {"sweep": 5, "mac": 7, "pool": 4, "scan": 6}
#: Spikes the stub spike writer reports in every sweep's start cycle.
SPIKES = 3


class _Bench(wiring.Component):
    """A sequencer on a descriptor memory holding ``descriptors``."""

    def __init__(self, descriptors):
        self.seq = Sequencer(widths=descriptor_widths(
            CONFIG, bias_depth=SIZES.bias_depth, max_layers=SIZES.max_layers))
        self.table = memory.MemoryData(shape=self.seq.descriptor_layout,
                                       depth=SIZES.max_layers, init=descriptors)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = self.seq
        m.submodules.table = table = memory.Memory(self.table)
        for port in (seq.table, seq.segments):
            read = table.read_port()
            m.d.comb += [read.addr.eq(port.addr), read.en.eq(port.en), port.data.eq(read.data)]
        return m


def run(descriptors, *, cycles=2000):
    """The strobes the sequencer gave, ``(cycle, name, details)``, up to its ``done``."""
    bench = _Bench(descriptors)
    seq = bench.seq
    events = []

    async def testbench(ctx):
        due = {}  # cycle -> the done inputs to raise then
        ctx.set(seq.start, 1)
        await ctx.tick()
        ctx.set(seq.start, 0)
        for cycle in range(1, cycles):
            raised = due.pop(cycle, ())
            for name in ("sweep_done", "mac_done", "pool_done", "fill_marker", "fill_done"):
                ctx.set(getattr(seq, name), int(name in raised))
            ctx.set(seq.spikes, SPIKES if ctx.get(seq.sweep_start) else 0)
            assert ctx.get(seq.busy)

            def later(name, after):
                due.setdefault(cycle + after, set()).add(name)

            if ctx.get(seq.sweep_start):
                params = ctx.get(seq.sweep_params)
                events.append((cycle, "sweep", (ctx.get(seq.layer), ctx.get(seq.step),
                                                params.first_step, params.keep_current)))
                later("sweep_done", LATENCY["sweep"])
            if ctx.get(seq.mac_start):
                events.append((cycle, "mac", (ctx.get(seq.layer), ctx.get(seq.step))))
                later("mac_done", LATENCY["mac"])
            if ctx.get(seq.pool_start):
                events.append((cycle, "pool", (ctx.get(seq.layer), ctx.get(seq.step))))
                later("pool_done", LATENCY["pool"])
            if ctx.get(seq.scan_start):
                first = ctx.get(seq.scan_params.first_word)
                events.append((cycle, "scan", (ctx.get(seq.layer), ctx.get(seq.step), first)))
                if not ctx.get(seq.pool_start):
                    later("fill_marker", LATENCY["scan"] - 1)
                    later("fill_done", LATENCY["scan"])
            if ctx.get(seq.swap):
                events.append((cycle, "swap", (ctx.get(seq.layer), ctx.get(seq.step))))
            if ctx.get(seq.counts.en):
                events.append((cycle, "count", (ctx.get(seq.counts.addr),
                                                ctx.get(seq.counts.data))))
            if ctx.get(seq.done):
                events.append((cycle, "done", ()))
                await ctx.tick()
                assert not ctx.get(seq.busy)
                return
            await ctx.tick()
        raise AssertionError("the sequencer did not finish")

    run_sim(bench, testbench)
    return events


def chain_program():
    """c1 (direct conv, 1 group) -> mp (max-pool) -> fc (output), T = 2."""
    return build_program(chain(), CONFIG, SIZES)


def test_sim_schedule():
    program = chain_program()
    in_words = [row["segment"]["in_words"] for row in program.descriptors[3:]]
    events = run(program.descriptors)
    assert [(name, details) for _, name, details in events] == [
        # c1, direct: phase 0 runs the MAC and swaps; phases 1 and 2 sweep the kept current,
        # the last one clearing it; no swap after phase 0.
        ("mac", (0, 0)), ("swap", (0, 0)),
        ("sweep", (0, 1, 1, 1)), ("sweep", (0, 2, 0, 0)), ("count", (0, 2 * SPIKES)),
        # mp: T phases, the scanner and the pool pass on input timestep k + 1; no sweep, no swap.
        ("pool", (1, 0)), ("scan", (1, 0, 0)), ("pool", (1, 1)), ("scan", (1, 1, in_words[1])),
        ("count", (1, 0)),
        # fc: T + 1 phases, a fill in phases 0 .. T - 1 (its pass starts the cycle after
        # PHASE, where the sweep starts), a sweep in phases 1 .. T, a swap after each.
        ("scan", (2, 0, 0)), ("swap", (2, 0)),
        ("sweep", (2, 1, 1, 0)), ("scan", (2, 1, in_words[2])), ("swap", (2, 1)),
        ("sweep", (2, 2, 0, 0)), ("swap", (2, 2)),
        ("count", (2, 2 * SPIKES)), ("done", ()),
    ]


def test_sim_phase_cost():
    """A phase started in cycle S ends with SWAP in ``max(S + 1, F, D) + 1``: the next phase's
    PHASE cycle is two after the later of the fill side's end and the sweep's ``done``."""
    events = run(chain_program().descriptors)
    at = {(name, details[:2]): cycle for cycle, name, details in events}
    # c1 phase 1 (PHASE = its sweep start, sweep only): phase 2 starts LATENCY + 2 later.
    assert at["sweep", (0, 2)] - at["sweep", (0, 1)] == LATENCY["sweep"] + 2
    # c1 phase 0: the MAC starts in F_PASS (PHASE + 1), its done LATENCY later ends the fill
    # side (F); SWAP follows in the next cycle.
    assert at["swap", (0, 0)] - at["mac", (0, 0)] == LATENCY["mac"] + 1
    # fc phase 1: fill (scan) and sweep overlap; the later (the scan's done) decides.
    phase = at["sweep", (2, 1)]
    assert at["swap", (2, 1)] == max(phase + 1 + LATENCY["scan"], phase + LATENCY["sweep"]) + 1


def test_init():
    widths = descriptor_widths(CONFIG, bias_depth=64, max_layers=16)
    dut = Sequencer(widths=widths, counter_bits=20)
    assert dut.widths == widths and dut.widths is not widths
    assert dut.descriptor_layout.size == max(layer_layout(**widths).size,
                                             segment_layout(**widths).size)
    assert len(dut.counts.data) == 20 and len(dut.layer) == widths["layer_bits"]


@pytest.mark.parametrize("name", ["layer_bits", "addr_bits"])
def test_widths_follow_the_config(name):
    small = descriptor_widths(AcceleratorConfig(pes=4), bias_depth=64, max_layers=16)
    large = descriptor_widths(AcceleratorConfig(pes=4, max_positions=4096), bias_depth=64,
                              max_layers=256)
    assert large[name] > small[name]


def test_init_wrong_widths():
    widths = descriptor_widths(CONFIG, bias_depth=64, max_layers=16)
    del widths["sel_bits"]
    with pytest.raises(TypeError, match=r"^Widths must be a dict with the keys of "
                                        r"descriptor_widths\(\), not \{'addr_bits'"):
        Sequencer(widths=widths)
    with pytest.raises(TypeError, match=r"^Widths must be a dict with the keys of "
                                        r"descriptor_widths\(\), not None$"):
        Sequencer(widths=None)


@pytest.mark.parametrize("value", [0, 2.0, True])
def test_init_wrong_width(value):
    widths = {**descriptor_widths(CONFIG, bias_depth=64, max_layers=16), "coord_bits": value}
    with pytest.raises(TypeError, match=rf"^Width 'coord_bits' must be a positive integer, "
                                        rf"not {value!r}$"):
        Sequencer(widths=widths)


@pytest.mark.parametrize("value", [0, 2.0, True])
def test_init_wrong_counter_bits(value):
    widths = descriptor_widths(CONFIG, bias_depth=64, max_layers=16)
    with pytest.raises(TypeError, match=rf"^Counter width must be a positive integer, "
                                        rf"not {value!r}$"):
        Sequencer(widths=widths, counter_bits=value)
