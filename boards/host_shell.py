"""The PS-attached host shell: register block, run control, interrupt and the two streams.

The shell sits between the AXI side and the accelerator (``rtl/top.py``, through its host
memory port, ``rtl/host_port.py``):

* the register block of ``boards/regmap.py`` on the register bus (from
  :class:`~.axi_lite.AXI4LiteRegisters`), with the ``MEM_*`` registers in a
  :class:`~.memory_window.MemoryWindow`;
* run control: a run starts on ``CONTROL.start`` or, with ``MODE.auto_start``, when an image
  packet has been written (:class:`~.axis_pixels.PixelStreamIn`). When the accelerator's
  ``done`` comes, the :class:`~.readout.Readout` reads the output membranes; its result
  packet goes to the output stream (:class:`~.axis_results.ResultStreamOut`) with
  ``MODE.stream_results``, or is dropped. The end of the read-out ends the run: ``STATUS.done``
  and ``IRQ_STATUS.done`` are set, ``RUNS`` counts it and ``PREDICTION`` holds the arg max;
* ``irq`` is high while an enabled interrupt is pending (level, cleared by writing 1 to its
  ``IRQ_STATUS`` bit);
* ``leds`` show the run state for the board's LEDs: bit 0 a run is on, bit 1 done, bit 2
  an interrupt is pending, bit 3 the error flag.

While a run is on, image beats wait (``tready`` low) and ``CONTROL.start`` is ignored.
Sharing the host port: a ``MEM_DATA`` row write goes first and an image pixel waits; the
read-out has the read port while it runs and a ``MEM_RDATA`` read waits for it.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..rtl.host_port import HostMemory, host_signature
from .axi import axi4_stream_signature, register_bus_signature
from .axis_pixels import PixelStreamIn
from .axis_results import ResultStreamOut
from .memory_window import MemoryWindow
from .readout import Readout
from .regmap import (ADDR_WIDTH, COUNTERS, CONTROL_START, MAGIC, MODE_AUTO_START,
                     MODE_STREAM_RESULTS, REGISTERS, STATUS_BUSY, STATUS_DONE, STATUS_ERROR,
                     STATUS_READOUT)

__all__ = ["HostShell"]


class HostShell(wiring.Component):
    """Registers, run control and streams around the accelerator.

    Parameters
    ----------
    lanes, weight_bits, psum_bits, membrane_bits, pixel_bits : int
        The design's figures (shown in ``LANES`` and ``WIDTHS``).
    write_bits, read_bits : dict of int -> int
        Row widths of the host-written and host-read memories (``MemoryWindow``).
    addr_bits, w_data_bits, r_data_bits : int
        The host port's widths (``Top.host``).
    design_hash : int
        Shown (low 32 bits) in ``CONFIG_HASH``.

    Members
    -------
    regs : In(register_bus_signature(addr_width=ADDR_WIDTH))
    s_axis : In(axi4_stream_signature(data_width=32))
        Images.
    m_axis : Out(axi4_stream_signature(data_width=32))
        Result packets.
    irq : Out(1)
    leds : Out(4)
    start : Out(1)
    busy, done : In(1)
    cycles, pe_busy_cycles, ... : In(32)
        The accelerator's control and counters.
    host : Out(host_signature(...))
    """

    def __init__(self, *, lanes, weight_bits, psum_bits, membrane_bits, pixel_bits, write_bits,
                 read_bits, addr_bits, w_data_bits, r_data_bits, design_hash):
        self._lanes = lanes
        self._widths = weight_bits | psum_bits << 8 | membrane_bits << 16 | pixel_bits << 24
        self._hash = design_hash & 0xFFFF_FFFF
        self.window = MemoryWindow(write_bits=write_bits, read_bits=read_bits,
                                   addr_bits=addr_bits, w_data_bits=w_data_bits,
                                   r_data_bits=r_data_bits)
        self.readout = Readout(lanes=lanes, membrane_bits=membrane_bits, addr_bits=addr_bits,
                               data_bits=r_data_bits)
        self.pixels = PixelStreamIn(pixel_bits=pixel_bits, addr_bits=addr_bits)
        self.results = ResultStreamOut()
        super().__init__({
            "regs": In(register_bus_signature(addr_width=ADDR_WIDTH)),
            "s_axis": In(axi4_stream_signature(data_width=32)),
            "m_axis": Out(axi4_stream_signature(data_width=32)),
            "irq": Out(1), "leds": Out(4),
            "start": Out(1), "busy": In(1), "done": In(1),
            **{name: In(32) for name in COUNTERS.values()},
            "host": Out(host_signature(addr_bits=addr_bits, w_data_bits=w_data_bits,
                                       r_data_bits=r_data_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = self.window
        m.submodules.readout = readout = self.readout
        m.submodules.pixels = pixels = self.pixels
        m.submodules.results = results = self.results
        regs, host = self.regs, self.host

        mode = Signal(2)
        irq_enable = Signal(1)
        irq_status = Signal(1)
        out_channels = Signal(16, init=1)
        out_positions = Signal.like(readout.positions, init=1)
        running = Signal()
        done = Signal()
        error = Signal()
        runs = Signal(32)

        # ---- register writes
        writing = {name: regs.w_en & (regs.w_addr == offset)
                   for name, offset in REGISTERS.items()}
        value = regs.w_data
        start_request = writing["CONTROL"] & (value & CONTROL_START).any()
        auto_start = pixels.image_done & (mode & MODE_AUTO_START).any()
        begin = ~running & (start_request | auto_start)
        m.d.comb += [self.start.eq(begin),
                     window.value.eq(value), window.set_select.eq(writing["MEM_SELECT"]),
                     window.set_addr.eq(writing["MEM_ADDR"]),
                     window.write_word.eq(writing["MEM_DATA"])]
        with m.If(writing["MODE"]):
            m.d.sync += mode.eq(value)
        with m.If(writing["IRQ_ENABLE"]):
            m.d.sync += irq_enable.eq(value)
        with m.If(writing["OUT_CHANNELS"]):
            m.d.sync += out_channels.eq(value)
        with m.If(writing["OUT_POSITIONS"]):
            m.d.sync += out_positions.eq(value)
        with m.If(writing["IRQ_STATUS"]):
            m.d.sync += irq_status.eq(irq_status & ~value[:1])

        # ---- run control
        m.d.comb += [readout.start.eq(running & self.done), readout.channels.eq(out_channels),
                     readout.positions.eq(out_positions), readout.cycles.eq(self.cycles)]
        with m.If(begin):
            m.d.sync += [running.eq(1), done.eq(0), error.eq(0)]
        with m.If(readout.done):
            m.d.sync += [running.eq(0), done.eq(1), irq_status.eq(1), runs.eq(runs + 1)]
        with m.If(window.error):
            m.d.sync += error.eq(1)
        m.d.comb += [self.irq.eq((irq_status & irq_enable).any()),
                     self.leds.eq(Cat(running, done, irq_status.any(), error))]

        # ---- streams: images in while idle, result packets out (or dropped)
        streaming = (mode & MODE_STREAM_RESULTS).any()
        wiring.connect(m, wiring.flipped(self.s_axis), pixels.axis)
        wiring.connect(m, results.axis, wiring.flipped(self.m_axis))
        m.d.comb += [pixels.enable.eq(~running),
                     results.i_stream.payload.eq(readout.o_stream.payload),
                     results.i_stream.valid.eq(readout.o_stream.valid & streaming),
                     readout.o_stream.ready.eq(Mux(streaming, results.i_stream.ready, 1))]

        # ---- host port: row writes before pixels; the read-out before MEM_RDATA
        with m.If(window.host.w_en):
            m.d.comb += [host.w_sel.eq(window.host.w_sel), host.w_addr.eq(window.host.w_addr),
                         host.w_data.eq(window.host.w_data), host.w_en.eq(1)]
        with m.Else():
            m.d.comb += [host.w_sel.eq(HostMemory.PIXELS), host.w_addr.eq(pixels.w_addr),
                         host.w_data.eq(pixels.w_data), host.w_en.eq(pixels.w_en),
                         pixels.w_ready.eq(1)]
        m.d.comb += [window.host.r_data.eq(host.r_data), readout.r_data.eq(host.r_data),
                     window.r_grant.eq(~readout.busy)]
        with m.If(readout.busy):
            m.d.comb += [host.r_sel.eq(readout.r_sel), host.r_addr.eq(readout.r_addr),
                         host.r_en.eq(readout.r_en)]
        with m.Else():
            m.d.comb += [host.r_sel.eq(window.host.r_sel), host.r_addr.eq(window.host.r_addr),
                         host.r_en.eq(window.host.r_en)]

        # ---- register reads: one cycle, except MEM_RDATA, which waits for the window
        status = Signal(32)
        m.d.comb += status.eq(Mux(running, STATUS_BUSY, 0) | Mux(done, STATUS_DONE, 0)
                              | Mux(readout.busy, STATUS_READOUT, 0)
                              | Mux(error, STATUS_ERROR, 0))
        readable = {
            "ID": MAGIC, "LANES": self._lanes, "WIDTHS": self._widths,
            "CONFIG_HASH": self._hash, "STATUS": status, "MODE": mode,
            "IRQ_ENABLE": irq_enable, "IRQ_STATUS": irq_status,
            "PREDICTION": readout.prediction, "OUT_CHANNELS": out_channels,
            "OUT_POSITIONS": out_positions, "MEM_SELECT": window.select,
            "MEM_ADDR": window.addr, "RUNS": runs,
            **{register: getattr(self, member) for register, member in COUNTERS.items()},
        }
        reading_window = regs.r_en & (regs.r_addr == REGISTERS["MEM_RDATA"])
        m.d.comb += window.read_word.eq(reading_window)
        answer = Signal(32)
        answered = Signal()
        m.d.sync += answered.eq(regs.r_en & ~reading_window)
        with m.If(regs.r_en):
            m.d.sync += answer.eq(0)
            with m.Switch(regs.r_addr):
                for name, source in readable.items():
                    with m.Case(REGISTERS[name]):
                        m.d.sync += answer.eq(source)
        m.d.comb += [regs.r_valid.eq(answered | window.read_valid),
                     regs.r_data.eq(Mux(window.read_valid, window.read_data, answer))]
        return m
