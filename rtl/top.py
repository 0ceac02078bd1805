"""Top level: the sequencer, the datapath blocks, the memories and the hardware counters.

Dataflow (``docs/accelerator.md``): the event scanner reads the input spike bitmap of a
layer, the tap generator expands events into taps, the PE array accumulates weight rows into
the fill bank of the ping-pong controller; a direct-encoded layer's current comes from the
reference MAC instead (pixel memory, same weight rows). The aggregation sweep drains the
other bank through the aggregation core (adding the group's bias row), writes the membrane
memory and hands spike rows to the spike writer, which writes the layer's output bitmap.
In a max-pool layer the scanner's events go to the max-pool pass (``rtl/maxpool.py``)
instead, which ORs them into the output bitmap. The sequencer (``rtl/sequencer.py``) drives
all of it from the descriptor table.

The host loads the weight, bias, descriptor and pixel memories through the ``host`` port
(``rtl/program.py`` builds their images, ``rtl/host_port.py`` packs them into words), pulses
``start`` and waits for ``done``; the output layer's final membranes are then in the membrane
memory (or in the output membrane memory, with ``output_membrane_bits``), group ``g`` at rows
``g * positions ...``, read back through the same port. The
``trace`` port shows every membrane row the sweep writes, for Verilog testbenches.

Counters (``counter_bits`` wide, cleared by ``start``): ``cycles`` (the sequencer is busy),
the busy cycles of the PE array, the aggregation sweep, the event scanner and the MAC,
``overlap_cycles`` (PE array and sweep busy together) and, per descriptor, the spikes the
layer emitted (the ``spike_counts`` memory).
"""

from amaranth.hdl import Array, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .aggregation import AggregationCore
from .aggregation_sweep import AggregationSweep
from .config import AcceleratorConfig
from .cycle_model import PREDICTED_COUNTERS
from .event_scanner import EventScanner
from .host_port import (HostMemory, MembraneFault, host_signature, trace_signature,
                        trace_widths)
from .interfaces import row_layout
from .maxpool import MaxPoolPass
from .pe_array import PEArray
from .pim_first_layer import PIMFirstLayer
from .pingpong import PingPong
from .reference_mac import ReferenceMAC
from .sequencer import Sequencer, descriptor_widths
from .sizing import MemorySizes
from .spike_writer import SpikeWriter
from .tap_generator import TapGenerator
from .checks import check_int

__all__ = ["COUNTERS", "Top", "first_layer_block"]

#: ``Top``'s counter outputs, in the order the simulators, the register map and the reports
#: use: the cycle model's predicted counters, then ``overlap_cycles``, which it does not
#: predict (a measure of the ping-pong overlap, not a cost).
COUNTERS = PREDICTED_COUNTERS + ("overlap_cycles",)


def first_layer_block(config, *, pixel_bits, pixel_depth):
    """The first-layer block ``Top`` builds for ``config.first_layer`` (the reference MAC or
    the digital PIM; both have the same ports), sized as in ``Top``: also what a block-level
    synthesis of the two should compare."""
    c = config
    first = dict(lanes=c.pes, input_bits=pixel_bits, weight_bits=c.weight_bits,
                 psum_bits=c.psum_bits, addr_bits=c.addr_bits,
                 pixel_addr_bits=max(1, (pixel_depth - 1).bit_length()),
                 # The sequencer's geometry (its weight base) is a tap's width; a direct
                 # segment is never packed, so its rows are memory rows.
                 weight_addr_bits=c.tap_weight_addr_bits, coord_bits=c.coord_bits,
                 channel_bits=c.channel_bits + 1)
    if c.first_layer == "pim":
        return PIMFirstLayer(rows=c.pim_rows, columns=c.pim_columns, **first)
    return ReferenceMAC(**first)


class Top(wiring.Component):
    """The whole accelerator for one :class:`~.config.AcceleratorConfig`.

    Parameters
    ----------
    config : AcceleratorConfig
    sizes : MemorySizes
        The memories the config leaves open (``rtl/sizing.py``: bias, descriptor and pixel
        memories); ``MemorySizes()`` by default.
    counter_bits : int
        Width of the counters.
    fault : MembraneFault or None
        Tests only: flip one bit of one membrane write (``rtl/host_port.py``).

    Members
    -------
    start : In(1)
    busy : Out(1)
    done : Out(1)
        One-cycle strobe at the end of a run.
    cycles, pe_busy_cycles, aggregation_busy_cycles, scanner_busy_cycles, mac_busy_cycles,
    overlap_cycles : Out(counter_bits)
        The hardware counters.
    host : In(host_signature(...))
        The host memory port (``rtl/host_port.py``, ``docs/accelerator.md`` section 5):
        ``w_sel``/``w_addr``/``w_data``/``w_en`` write one word of the weight, bias,
        descriptor or pixel memory per cycle; ``r_sel``/``r_addr``/``r_en`` read a membrane
        row or a spike counter, ``r_data`` valid the cycle after ``r_en``. Writes are
        ignored and reads are invalid while ``busy``.
    trace : Out(trace_signature(...))
        ``valid`` in each cycle a membrane row is written; ``record`` holds ``layer``,
        ``group``, ``step``, ``position``, ``membrane`` (the row stored) and ``spikes``.

    Raises
    ------
    TypeError
        ``config`` is not an ``AcceleratorConfig``, ``sizes`` not ``MemorySizes``, the
        counter width not a positive integer, or ``fault`` is not a ``MembraneFault``.
    ValueError
        The fault's bit is not below ``config.membrane_bits``.
    """

    def __init__(self, *, config, sizes=MemorySizes(), counter_bits=32, fault=None):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"Config must be an AcceleratorConfig, not {config!r}")
        if not isinstance(sizes, MemorySizes):
            raise TypeError(f"Sizes must be MemorySizes, not {sizes!r}")
        check_int(counter_bits, "Counter width")
        if fault is not None and not isinstance(fault, MembraneFault):
            raise TypeError(f"Fault must be None or a MembraneFault, not {fault!r}")
        if fault is not None and fault.bit >= config.membrane_bits:
            raise ValueError(f"Fault bit must be below the membrane width "
                             f"{config.membrane_bits}, not {fault.bit}")
        self._fault = fault
        self._config = config
        self._sizes = sizes
        bias_depth, max_layers = sizes.bias_depth, sizes.max_layers
        pixel_depth, pixel_bits = sizes.pixel_depth, sizes.pixel_bits
        c = config
        lanes = c.pes
        w = descriptor_widths(c, bias_depth=bias_depth, max_layers=max_layers)
        pixel_addr_bits = max(1, (pixel_depth - 1).bit_length())
        # Blocks live here (not in elaborate) so that the harness can watch their ports.
        self.sequencer = Sequencer(widths=w, counter_bits=counter_bits)
        self.scanner = EventScanner(lanes=lanes, word_addr_bits=c.spike_addr_bits,
                                    channel_bits=max(c.channel_bits, lanes.bit_length()),
                                    coord_bits=c.coord_bits, position_bits=c.addr_bits + 1,
                                    group_bits=w["count_bits"])
        self.tap_generator = TapGenerator(
            channel_bits=max(c.channel_bits, lanes.bit_length()), coord_bits=c.coord_bits,
            addr_bits=c.addr_bits, weight_addr_bits=c.tap_weight_addr_bits)
        self.pool = MaxPoolPass(lanes=lanes, word_addr_bits=c.spike_addr_bits,
                                channel_bits=max(c.channel_bits, lanes.bit_length()),
                                coord_bits=c.coord_bits, group_bits=w["count_bits"])
        self.pe_array = PEArray(lanes=lanes, weight_bits=c.weight_bits, psum_bits=c.psum_bits,
                                addr_bits=c.addr_bits, weight_addr_bits=c.weight_addr_bits,
                                weight_packing=c.weight_packing,
                                taps_per_cycle=c.taps_per_cycle)
        self.mac = first_layer_block(c, pixel_bits=pixel_bits, pixel_depth=pixel_depth)
        self.pingpong = PingPong(addr_bits=c.addr_bits, psum_bits=c.psum_bits, lanes=lanes,
                                 depth=c.max_positions, counter_bits=counter_bits)
        self.sweep = AggregationSweep(lanes=lanes, psum_bits=c.psum_bits,
                                      membrane_bits=c.core_membrane_bits, addr_bits=c.addr_bits)
        self.core = AggregationCore(lanes=lanes, psum_bits=c.psum_bits,
                                    membrane_bits=c.core_membrane_bits, addr_bits=c.addr_bits,
                                    leak_multiplier=c.leak_multiplier,
                                    current_shifter=c.current_shifter)
        self.writer = SpikeWriter(lanes=lanes, addr_bits=c.addr_bits,
                                  word_addr_bits=c.spike_addr_bits, group_bits=w["count_bits"])
        # Memories the host loads and reads (MemoryData, so that simulations can reach them).
        self.weights = memory.MemoryData(shape=row_layout(c.weight_bits, lanes),
                                         depth=c.weight_depth, init=[])
        self.biases = memory.MemoryData(shape=row_layout(c.psum_bits, lanes), depth=bias_depth,
                                        init=[])
        self.descriptors = memory.MemoryData(shape=self.sequencer.descriptor_layout,
                                             depth=max_layers, init=[])
        self.pixels = memory.MemoryData(shape=unsigned(pixel_bits), depth=pixel_depth, init=[])
        self.bitmaps = tuple(memory.MemoryData(shape=unsigned(lanes), depth=c.spike_words,
                                               init=[]) for _ in range(c.spike_bitmaps))
        self.membranes = memory.MemoryData(shape=row_layout(c.membrane_bits, lanes),
                                           depth=c.max_positions, init=[])
        #: The output layer's wider membranes (``None`` when they live in ``membranes``).
        self.output_membranes = memory.MemoryData(
            shape=row_layout(c.core_membrane_bits, lanes), depth=c.output_membrane_rows,
            init=[]) if c.separate_output_membranes else None
        self.spike_counts = memory.MemoryData(shape=unsigned(counter_bits), depth=max_layers,
                                              init=[])
        widths = [Shape.cast(d.shape).width for d in (self.weights, self.biases,
                                                       self.descriptors, self.pixels)]
        host = host_signature(
            addr_bits=max(c.weight_addr_bits, w["bias_addr_bits"], w["layer_bits"],
                          pixel_addr_bits, c.addr_bits),
            w_data_bits=max(widths),
            r_data_bits=max(c.core_membrane_bits * lanes, counter_bits))
        trace = trace_signature(**trace_widths(c, w))
        super().__init__({"start": In(1), "busy": Out(1), "done": Out(1),
                          **{name: Out(counter_bits) for name in COUNTERS},
                          "host": In(host), "trace": Out(trace)})

    @property
    def config(self):
        return self._config

    @property
    def fault(self):
        """The test-only :class:`~.host_port.MembraneFault`, or ``None``."""
        return self._fault

    def _faulty(self, m, port, seq):
        """The membrane row to store: ``port.w_data`` with the fault's bit flipped."""
        fault = self._fault
        if fault is None:
            return port.w_data
        lanes = self._config.pes
        row = Signal.like(port.w_data)
        lane = fault.channel % lanes
        m.d.comb += row.eq(port.w_data)
        with m.If(port.w_en & (seq.layer == fault.layer) & (seq.step == fault.timestep)
                  & (seq.group == fault.channel // lanes) & (port.w_addr == fault.position)):
            m.d.comb += row[lane].eq(port.w_data[lane].as_unsigned() ^ (1 << fault.bit))
        return row

    @property
    def sizes(self):
        """The :class:`~.sizing.MemorySizes` of the design."""
        return self._sizes

    def elaborate(self, platform):
        m = Module()
        seq, scan, taps, pe = self.sequencer, self.scanner, self.tap_generator, self.pe_array
        mac, pp, sweep, core, writer = self.mac, self.pingpong, self.sweep, self.core, self.writer
        for name, block in (("sequencer", seq), ("scanner", scan), ("tap_generator", taps),
                            ("pe_array", pe), ("mac", mac), ("pingpong", pp), ("sweep", sweep),
                            ("core", core), ("writer", writer), ("pool", self.pool)):
            m.submodules[name] = block
        desc, seg = seq.desc, seq.seg
        direct = desc.direct   # the layer's current is computed once (phase 0) and kept
        on_pixels = seg.mac    # the running segment reads the pixels (first-layer block)

        m.d.comb += [seq.start.eq(self.start), self.busy.eq(seq.busy), self.done.eq(seq.done)]

        # Descriptor table and bias rows: the read data holds for the layer / the group.
        m.submodules.descriptors = descriptors = memory.Memory(data=self.descriptors)
        table = descriptors.read_port()
        m.d.comb += [table.addr.eq(seq.table.addr), table.en.eq(seq.table.en),
                     seq.table.data.eq(table.data)]
        segment_rows = descriptors.read_port()  # the same table's segment rows
        m.d.comb += [segment_rows.addr.eq(seq.segments.addr),
                     segment_rows.en.eq(seq.segments.en),
                     seq.segments.data.eq(segment_rows.data)]
        m.submodules.biases = biases = memory.Memory(data=self.biases)
        bias = biases.read_port()
        m.d.comb += [bias.addr.eq(seq.bias.addr), bias.en.eq(seq.bias.en)]

        # Spike bitmaps: the scanner reads the segment's bitmap in_sel, the writer (or, in a
        # max-pool layer, the pool pass, read-modify-write) writes the layer's bitmap out_sel.
        # One read port per bitmap serves both readers: the pool pass reads only its output
        # bitmap, which is never the one it scans (rtl/layout.py), so they never meet on a
        # bitmap. (A second read port would make Yosys duplicate every bitmap's BRAMs.)
        pool = self.pool
        pooling = desc.pool
        read_data = []
        for index, bitmap_data in enumerate(self.bitmaps):
            m.submodules[f"bitmap{index}"] = bitmap = memory.Memory(data=bitmap_data)
            read, write = bitmap.read_port(), bitmap.write_port()
            out_here = desc.out_sel == index
            pool_here = pooling & out_here
            m.d.comb += [
                read.addr.eq(Mux(pool_here, pool.read.addr, scan.mem.addr)),
                read.en.eq(Mux(pool_here, pool.read.en,
                               scan.mem.en & (seg.in_sel == index))),
                write.addr.eq(Mux(pooling, pool.write.addr, writer.mem.addr)),
                write.data.eq(Mux(pooling, pool.write.data, writer.mem.data)),
                # The output layer's spike rows are all zero: nothing to store.
                write.en.eq(out_here & Mux(pooling, pool.write.en,
                                           writer.mem.en & ~desc.output)),
            ]
            read_data.append(read.data)
        m.d.comb += [scan.mem.data.eq(Array(read_data)[seg.in_sel]),
                     pool.read.data.eq(Array(read_data)[desc.out_sel])]

        # Fill side: scanner -> tap generator -> PE array, or the MAC.
        m.d.comb += [scan.start.eq(seq.scan_start), scan.params.eq(seq.scan_params),
                     taps.geometry.eq(seq.geometry)]
        # The scanner's events go to the tap generator, or to the pool pass when pooling.
        events, to_taps, to_pool = scan.o_stream, taps.i_stream, pool.i_stream
        m.d.comb += [
            to_taps.payload.eq(events.payload), to_pool.payload.eq(events.payload),
            to_taps.valid.eq(events.valid & ~pooling), to_pool.valid.eq(events.valid & pooling),
            events.ready.eq(Mux(pooling, to_pool.ready, to_taps.ready)),
            pool.start.eq(seq.pool_start), seq.pool_done.eq(pool.done),
            pool.params.kernel_h.eq(seq.geometry.kernel_h),
            pool.params.kernel_w.eq(seq.geometry.kernel_w),
            pool.params.stride_h.eq(seq.geometry.stride_h),
            pool.params.stride_w.eq(seq.geometry.stride_w),
            pool.params.out_h.eq(seq.geometry.out_h), pool.params.out_w.eq(seq.geometry.out_w),
            pool.params.groups.eq(desc.groups),
            pool.params.word_base.eq(seq.write_params.word_base),
        ]
        # Taps go to the PE array with the pass's bank offset (a conv3d output plane).
        tap, pe_tap = taps.o_stream, pe.i_stream
        m.d.comb += [pe_tap.valid.eq(tap.valid), tap.ready.eq(pe_tap.ready),
                     pe_tap.payload.eq(tap.payload),
                     pe_tap.payload.out_addr.eq(tap.payload.out_addr + seq.out_offset)]
        if self._config.weight_packing:
            m.d.comb += pe.packed.eq(seg.packed)
        m.d.comb += [
            seq.fill_marker.eq(taps.o_stream.valid & taps.o_stream.payload.end),
            seq.fill_done.eq(pe.done),
            mac.start.eq(seq.mac_start), mac.geometry.eq(seq.geometry),
            # In a residual add the sweep adds the (summed) bias, not the first-layer block.
            mac.in_channels.eq(seg.in_channels), mac.bias.eq(Mux(direct, bias.data, 0)),
            seq.mac_done.eq(mac.done),
        ]
        m.submodules.pixels = pixels = memory.Memory(data=self.pixels)
        pixel_read = pixels.read_port()
        m.d.comb += [pixel_read.addr.eq(mac.pixels.addr + seq.pixel_offset),
                     pixel_read.en.eq(mac.pixels.en),
                     mac.pixels.data.eq(pixel_read.data)]
        m.submodules.weights = weights = memory.Memory(data=self.weights)
        weight_read = weights.read_port()
        m.d.comb += [
            weight_read.addr.eq(Mux(on_pixels, mac.weights.addr, pe.weights.addr)),
            weight_read.en.eq(Mux(on_pixels, mac.weights.en, pe.weights.en)),
            pe.weights.data.eq(weight_read.data), mac.weights.data.eq(weight_read.data),
        ]
        fill = pp.fill
        with m.If(on_pixels):
            m.d.comb += [fill.r_addr.eq(mac.bank.r_addr), fill.r_en.eq(mac.bank.r_en),
                         fill.w_addr.eq(mac.bank.w_addr + seq.out_offset),
                         fill.w_en.eq(mac.bank.w_en),
                         fill.w_data.eq(mac.bank.w_data)]
        with m.Else():
            m.d.comb += [fill.r_addr.eq(pe.bank.r_addr), fill.r_en.eq(pe.bank.r_en),
                         fill.w_addr.eq(pe.bank.w_addr), fill.w_en.eq(pe.bank.w_en),
                         fill.w_data.eq(pe.bank.w_data)]
        m.d.comb += [pe.bank.r_data.eq(fill.r_data), mac.bank.r_data.eq(fill.r_data)]

        # Drain side: sweep + core, membranes, spike writer.
        wiring.connect(m, sweep=sweep.bank, pingpong=pp.drain)
        m.d.comb += [
            pp.swap.eq(seq.swap), pp.fill_busy.eq(pe.busy | mac.busy),
            pp.drain_busy.eq(sweep.busy), pp.clear.eq(self.start & ~seq.busy),
            sweep.start.eq(seq.sweep_start), sweep.params.eq(seq.sweep_params),
            seq.sweep_done.eq(sweep.done),
            # A direct layer's MAC already added the bias.
            sweep.bias.eq(Mux(direct, 0, bias.data)),
            core.params.eq(desc.neuron),
            writer.params.eq(seq.write_params),
            seq.spikes.eq(writer.spikes),
        ]
        wiring.connect(m, sweep=sweep.o_core, core=core.i_stream)
        wiring.connect(m, core=core.o_stream, sweep=sweep.i_core)
        wiring.connect(m, sweep=sweep.o_spikes, writer=writer.i_stream)
        m.submodules.membranes = membranes = memory.Memory(data=self.membranes)
        membrane_read, membrane_write = membranes.read_port(), membranes.write_port()
        offset = seq.membrane_offset
        host, idle = self.host, ~seq.busy
        # The host reads the output layer's membranes through the sweep's read port while the
        # design is idle.
        host_reads = host.r_en & idle
        host_membranes = host_reads & (host.r_sel == HostMemory.MEMBRANES)
        read_addr = Mux(idle, host.r_addr, sweep.membrane.r_addr + offset)
        written = self._faulty(m, sweep.membrane, seq)
        # What the memories store, at the core's width: a hidden layer's row is cut to the
        # membrane memory's width (its values saturated there) and read back sign-extended.
        hidden_stored = Signal.like(written)
        hidden_read = Signal.like(sweep.membrane.r_data)
        for lane in range(self._config.pes):
            m.d.comb += [membrane_write.data[lane].eq(written[lane]),
                         hidden_stored[lane].eq(membrane_write.data[lane]),
                         hidden_read[lane].eq(membrane_read.data[lane])]
        stored, read_row = Signal.like(written), Signal.like(hidden_read)
        m.d.comb += [
            membrane_read.addr.eq(read_addr),
            membrane_write.addr.eq(sweep.membrane.w_addr + offset),
            sweep.membrane.r_data.eq(read_row),
        ]
        if self.output_membranes is None:
            m.d.comb += [
                membrane_read.en.eq(Mux(idle, host_membranes, sweep.membrane.r_en)),
                membrane_write.en.eq(sweep.membrane.w_en),
                stored.eq(hidden_stored), read_row.eq(hidden_read),
            ]
        else:
            # The output layer's rows go to their own memory at the core's full width; the
            # host reads only that one.
            m.submodules.output_membranes = outputs = memory.Memory(data=self.output_membranes)
            output_read, output_write = outputs.read_port(), outputs.write_port()
            out_layer = desc.output
            from_output = Signal()   # the memory of the last read
            with m.If(membrane_read.en | output_read.en):
                m.d.sync += from_output.eq(output_read.en)
            m.d.comb += [
                membrane_read.en.eq(~idle & sweep.membrane.r_en & ~out_layer),
                output_read.en.eq(Mux(idle, host_membranes, sweep.membrane.r_en & out_layer)),
                output_read.addr.eq(read_addr),
                membrane_write.en.eq(sweep.membrane.w_en & ~out_layer),
                output_write.en.eq(sweep.membrane.w_en & out_layer),
                output_write.addr.eq(sweep.membrane.w_addr + offset),
                output_write.data.eq(written),
                stored.eq(Mux(out_layer, written, hidden_stored)),
                read_row.eq(Mux(from_output, output_read.data, hidden_read)),
            ]
        m.submodules.spike_counts = counts = memory.Memory(data=self.spike_counts)
        count_write, count_read = counts.write_port(), counts.read_port()
        m.d.comb += [count_write.addr.eq(seq.counts.addr), count_write.en.eq(seq.counts.en),
                     count_write.data.eq(seq.counts.data),
                     count_read.addr.eq(host.r_addr),
                     count_read.en.eq(host_reads & (host.r_sel == HostMemory.SPIKE_COUNTS))]

        # Host port: the loadable memories get a write port, enabled only while idle.
        for which, loaded in ((HostMemory.WEIGHTS, weights), (HostMemory.BIASES, biases),
                              (HostMemory.DESCRIPTORS, descriptors),
                              (HostMemory.PIXELS, pixels)):
            port = loaded.write_port()
            m.d.comb += [port.addr.eq(host.w_addr),
                         port.data.eq(host.w_data[:Shape.cast(loaded.shape).width]),
                         port.en.eq(host.w_en & idle & (host.w_sel == which))]
        read_sel = Signal(HostMemory)  # r_data follows the memory of the last read
        with m.If(host_reads):
            m.d.sync += read_sel.eq(host.r_sel)
        m.d.comb += host.r_data.eq(Mux(read_sel == HostMemory.SPIKE_COUNTS, count_read.data,
                                       read_row.as_value()))

        # Trace port: every membrane row the sweep writes, as stored (a fault included).
        trace = self.trace
        record = trace.record
        m.d.comb += [trace.valid.eq(sweep.membrane.w_en), record.layer.eq(seq.layer),
                     record.group.eq(seq.group), record.step.eq(seq.step),
                     record.position.eq(sweep.membrane.w_addr),
                     record.membrane.eq(stored),
                     record.spikes.eq(sweep.o_spikes.payload.spikes)]

        # Counters.
        busy_of = {"cycles": seq.busy, "pe_busy_cycles": pe.busy,
                   "aggregation_busy_cycles": sweep.busy, "scanner_busy_cycles": scan.busy,
                   "mac_busy_cycles": mac.busy}
        clear = self.start & ~seq.busy
        for name, condition in busy_of.items():
            counter = getattr(self, name)
            with m.If(clear):
                m.d.sync += counter.eq(0)
            with m.Elif(condition):
                m.d.sync += counter.eq(counter + 1)
        m.d.comb += self.overlap_cycles.eq(pp.overlap_cycles)
        return m
