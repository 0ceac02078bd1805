"""Test-only helpers for the RTL unit tests: a PE array on its own memories, and a driver.

``FirstLayerHarness`` puts a first-layer block (the reference MAC or the PIM: one signature)
on an image memory, a weight memory and a bank, in the same way.

``PEHarness`` attaches a :class:`~spikeforge.rtl.pe_array.PEArray` (optionally fed by a
:class:`~spikeforge.rtl.tap_generator.TapGenerator`) to a partial-sum bank and a weight
memory, both ``memory.MemoryData`` so that tests can preload and peek them. The bank's read
port is not transparent by default: the PE array's forwarding must not rely on it.

``lockstep`` drives one stream and drains another in a single loop, one iteration per clock
cycle, so that it can report the cycle of every transfer (``sim.streams`` helpers hide it);
it follows the same ``pause`` convention as ``stream_put_all``/``stream_get_all``.

``run_sim`` runs testbenches on a component with the tests' 100 MHz clock, writing a VCD
file where ``vcd_file`` gives one (``$SPIKEFORGE_VCD`` set and a ``tmp_path`` given).
"""

import itertools
import os

from amaranth.hdl import Module
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.rtl.interfaces import event_layout, row_layout, tap_layout
from spikeforge.rtl.pe_array import PEArray
from spikeforge.rtl.tap_generator import TapGenerator, geometry_layout

__all__ = ["PEHarness", "FirstLayerHarness", "row_values", "read_rows", "lockstep", "run_sim",
           "vcd_file"]


def vcd_file(tmp_path, name):
    """``tmp_path / "NAME.vcd"`` when ``$SPIKEFORGE_VCD`` is set and ``tmp_path`` is given,
    else ``None`` (no waveform)."""
    if os.environ.get("SPIKEFORGE_VCD") and tmp_path is not None:
        return tmp_path / f"{name}.vcd"
    return None


def run_sim(dut, *testbenches, background=(), vcd=None):
    """Run ``testbenches`` (then the ``background`` ones) on ``dut`` with a 100 MHz clock,
    writing the waveform to ``vcd`` unless it is ``None``."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    if vcd is None:
        sim.run()
    else:
        with sim.write_vcd(str(vcd)):
            sim.run()


def row_values(row, lanes):
    """The lanes of a sampled row as a list of Python ints."""
    return [int(row[i]) for i in range(lanes)]


def read_rows(ctx, mem_data, lanes, count=None):
    """Rows ``0 .. count - 1`` of a ``MemoryData`` of ``row_layout`` rows, as lists of ints."""
    count = mem_data.depth if count is None else count
    return [row_values(ctx.get(mem_data[i]), lanes) for i in range(count)]


class PEHarness(wiring.Component):
    """A ``PEArray`` with its bank and weight memories (and optionally a tap generator).

    Parameters
    ----------
    weights : list of list of int
        The weight rows (``lanes`` values each), loaded as the weight memory's contents.
    depth : int
        Rows of the partial-sum bank (zero at reset).
    transparent : bool
        Make the bank's read port transparent for its write port.
    channel_bits, coord_bits : int or None
        Given both, a ``TapGenerator`` is put in front and ``i_stream`` carries events
        (with a ``geometry`` input); otherwise ``i_stream`` carries taps.
    **pe_params
        The ``PEArray`` parameters.
    """

    def __init__(self, *, weights, depth, transparent=False, channel_bits=None,
                 coord_bits=None, **pe_params):
        self.pe = PEArray(**pe_params)
        lanes, addr_bits = self.pe.lanes, self.pe.addr_bits
        waddr_bits = self.pe.weight_addr_bits
        self._transparent = transparent
        self.bank = memory.MemoryData(shape=row_layout(self.pe.psum_bits, lanes), depth=depth,
                                      init=[])
        self.weight_rows = memory.MemoryData(shape=row_layout(self.pe.weight_bits, lanes),
                                             depth=len(weights), init=weights)
        members = {"done": Out(1), "busy": Out(1)}
        if self.pe.weight_packing:
            members["packed"] = In(1)
        if coord_bits is None:
            self.tap_generator = None
            payload = tap_layout(addr_bits=addr_bits,
                                 weight_addr_bits=waddr_bits + self.pe.weight_packing)
        else:
            self.tap_generator = TapGenerator(channel_bits=channel_bits, coord_bits=coord_bits,
                                              addr_bits=addr_bits, weight_addr_bits=waddr_bits)
            payload = event_layout(channel_bits=channel_bits, coord_bits=coord_bits)
            members["geometry"] = In(geometry_layout(coord_bits=coord_bits,
                                                     weight_addr_bits=waddr_bits))
        members["i_stream"] = In(stream.Signature(payload))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = pe = self.pe
        if pe.weight_packing:
            m.d.comb += pe.packed.eq(self.packed)
        if self.tap_generator is None:
            wiring.connect(m, source=wiring.flipped(self.i_stream), sink=pe.i_stream)
        else:
            m.submodules.tap_generator = tg = self.tap_generator
            m.d.comb += tg.geometry.eq(self.geometry)
            wiring.connect(m, source=wiring.flipped(self.i_stream), sink=tg.i_stream)
            wiring.connect(m, taps=tg.o_stream, pe=pe.i_stream)
        m.d.comb += [self.done.eq(pe.done), self.busy.eq(pe.busy)]

        m.submodules.bank = bank = memory.Memory(data=self.bank)
        write = bank.write_port()
        read = bank.read_port(transparent_for=(write,) if self._transparent else ())
        m.d.comb += [
            read.addr.eq(pe.bank.r_addr), read.en.eq(pe.bank.r_en),
            pe.bank.r_data.eq(read.data),
            write.addr.eq(pe.bank.w_addr), write.en.eq(pe.bank.w_en),
            write.data.eq(pe.bank.w_data),
        ]
        m.submodules.weight_memory = weight_memory = memory.Memory(data=self.weight_rows)
        weight_read = weight_memory.read_port()
        m.d.comb += [
            weight_read.addr.eq(pe.weights.addr), weight_read.en.eq(pe.weights.en),
            pe.weights.data.eq(weight_read.data),
        ]
        return m


async def lockstep(ctx, i_stream, payloads, o_stream, *, stop, put_pause=(0,), get_pause=(0,),
                   limit=20_000):
    """Send ``payloads`` on ``i_stream`` while receiving from ``o_stream``, cycle by cycle.

    Cycle ``0`` is the cycle the call starts in. Returns ``(in_cycles, received)``: the cycle
    of each input transfer, and ``(cycle, payload)`` per output transfer, up to and
    including the first payload for which ``stop(payload)`` is true.
    """
    puts, gets = itertools.cycle(put_pause), itertools.cycle(get_pause)
    in_cycles, received = [], []
    sent, offering, accepting = 0, False, False
    for cycle in range(limit):
        if not offering and sent < len(payloads) and not next(puts):
            offering = True
            ctx.set(i_stream.payload, payloads[sent])
        if not accepting and not next(gets):
            accepting = True
        ctx.set(i_stream.valid, offering)
        ctx.set(o_stream.ready, accepting)
        _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
            i_stream.ready, o_stream.valid, o_stream.payload)
        if offering and i_ready:
            in_cycles.append(cycle)
            sent += 1
            offering = False
        if accepting and o_valid:
            received.append((cycle, o_payload))
            accepting = False
            if stop(o_payload):
                ctx.set(i_stream.valid, 0)
                ctx.set(o_stream.ready, 0)
                return in_cycles, received
    raise AssertionError(f"lockstep: no final payload within {limit} cycles")


class FirstLayerHarness(wiring.Component):
    """A first-layer block on an image memory, a weight memory and a bank (``MemoryData``, so
    the test can preload and peek them), exposing the bank's write enable and address."""

    def __init__(self, block, *, pixels, weights, bank_depth):
        self.block = block
        self.image = memory.MemoryData(shape=block.input_bits, depth=len(pixels), init=pixels)
        self.weight_rows = memory.MemoryData(shape=row_layout(block.weight_bits, block.lanes),
                                             depth=len(weights), init=weights)
        self.bank = memory.MemoryData(shape=row_layout(block.psum_bits, block.lanes),
                                      depth=bank_depth, init=[])
        members = block.signature.members
        super().__init__({name: members[name] for name in
                          ("geometry", "in_channels", "bias", "start", "busy", "done")}
                         | {"w_en": Out(1), "w_addr": Out(block.addr_bits)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = self.block
        for name in ("geometry", "in_channels", "bias", "start"):
            m.d.comb += getattr(block, name).eq(getattr(self, name))
        m.d.comb += [self.busy.eq(block.busy), self.done.eq(block.done),
                     self.w_en.eq(block.bank.w_en), self.w_addr.eq(block.bank.w_addr)]
        for name, data, client in (("image", self.image, block.pixels),
                                   ("weight_memory", self.weight_rows, block.weights)):
            m.submodules[name] = mem = memory.Memory(data=data)
            port = mem.read_port()
            m.d.comb += [port.addr.eq(client.addr), port.en.eq(client.en),
                         client.data.eq(port.data)]
        m.submodules.bank = bank = memory.Memory(data=self.bank)
        write = bank.write_port()
        m.d.comb += [write.addr.eq(block.bank.w_addr), write.en.eq(block.bank.w_en),
                     write.data.eq(block.bank.w_data)]
        return m
