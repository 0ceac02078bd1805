"""Sequencer: walks the layer-descriptor table and runs the layer-major schedule.

The table (``descriptor_layout``, a union per row) holds one *layer* row per descriptor,
followed by the *segment* rows: layer row ``i`` names its segments ``seg_base ..
seg_base + seg_count - 1`` (``rtl/layout.py``; one per input of a residual add, one for any
other layer). For each layer, for each channel group, the sequencer runs ``T + 1`` *phases*
``k = 0 .. T``. In phase ``k`` the fill side computes the current of timestep ``k + 1`` into
the fill bank while the aggregation sweep drains timestep ``k`` from the other bank
(``docs/accelerator.md`` section 1):

* a spiking-input layer: each segment scans input timestep ``k + 1`` (``k < T``) of its bitmap
  through the tap generator into the PE array; the sweep (``k >= 1``) drains timestep ``k``
  and clears its rows; the banks swap at the end of every phase;
* a direct-encoded layer: in phase 0 the first-layer block (reference MAC or PIM) writes the
  image's current (bias included) into the fill bank and the banks swap; phases ``1 .. T``
  sweep that bank with ``keep_current`` (no swap), except the last, which clears it, so that
  every bank is zero when a layer ends. A residual add that sums a direct-encoded current
  runs that block as its first segment in every phase (it overwrites the rows; the
  segments after it accumulate).

A segment is run as one or more *passes* (a conv3d: one per output plane ``od`` and kernel
plane ``kd``, ``docs/conv3d.md``; on the pixels one per output plane); the fill side of a
phase is a small state machine beside the main one:

* in the ``PHASE`` cycle it reads the first segment row; in each ``F_PASS`` cycle (the row on
  the read port) it starts the pass (scanner and tap generator, max-pool pass, or the
  first-layer block) or, for a kernel plane outside the input, skips it (1 cycle);
* ``F_RUN`` waits until the pass is done (the PE array's ``done`` after the pass's end marker,
  the pool pass's or the first-layer block's ``done``); that cycle steps the loop, reads the
  next segment row when the segment is finished, or ends the fill side (the phase may end
  the next cycle).

A pass's parameters are the segment row's fields plus running sums (no multiplier): input
plane ``d = od * s_d - p_d + kd`` and its first word ``k * in_words + d * plane_words``, the
weight rows ``group_base + offset + kd * kd_rows``, the bank offset ``od * out_plane`` added
to the PE array's and the first-layer block's bank addresses, and the pixel offset
``od * pixel_step``. The timestep's first word of each segment is kept in a register per
segment (``MAX_SEGMENTS``), advanced by ``in_words`` each time the segment has run.

States and their cycles (the cycle model, ``rtl/cycle_model.py``, adds them up):

* ``IDLE``: waits for ``start``; the cycle that samples ``start`` issues the read of
  descriptor 0 and is not counted;
* ``LOAD`` (1 cycle per layer): the layer row is on the table's read port (it holds there
  for the whole layer);
* ``GROUP`` (1 cycle per group): reads the group's bias row (it holds for the group);
* ``PHASE`` (1 cycle per phase): starts the sweep and the fill side;
* ``WAIT``: until the fill side has finished and the sweep's ``done`` has been seen;
* ``SWAP`` (1 cycle per phase): swaps the banks (a side is never busy then), advances ``k``;
* ``NEXT`` (1 cycle per layer): stores the layer's spike count, reads the next layer row;
* ``DONE`` (1 cycle): ``done`` strobe.

A max-pool layer has one group and ``T`` phases ``k = 0 .. T - 1``: the scanner and the
max-pool pass (``rtl/maxpool.py``) start together on input timestep ``k + 1`` and the pass
waits for the pool's ``done``; no sweep, no swap.

So a phase that starts (``PHASE``) in cycle ``S`` ends with ``SWAP`` in cycle
``max(S + 1, F, D) + 1``, where ``F`` is the cycle the fill side finishes (``S + 1 + the
passes``: a pass started in cycle ``P`` and done in cycle ``X`` costs ``X - P + 1``, a skipped
one ``1``, the last one ``X - P``) and ``D`` the cycle of the sweep's ``done`` strobe:
``max(1, F - S, D - S) + 2`` cycles.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .aggregation_sweep import sweep_params_layout
from .config import MAX_PES
from .event_scanner import scan_params_layout
from .interfaces import WordReadSignature, WordWriteSignature, neuron_params_layout
from .layout import MAX_SEGMENTS
from .spike_writer import write_params_layout
from .tap_generator import STRIDE_BITS, geometry_layout
from .checks import check_int

__all__ = ["PIXEL_STEP_BITS", "WIDTH_NAMES", "Sequencer", "descriptor_layout",
           "descriptor_widths", "layer_layout", "segment_layout"]

#: Width of a segment's pixel step (pixels per output plane of a direct conv3d).
PIXEL_STEP_BITS = 24


def _as_signed(value):
    """``value`` (unsigned) as a signed value one bit wider, so a subtraction can go negative."""
    return Cat(value, Const(0, 1)).as_signed()


#: The keys of :func:`descriptor_widths`, the widths a :class:`Sequencer` takes.
WIDTH_NAMES = ("addr_bits", "weight_addr_bits", "coord_bits", "channel_bits", "count_bits",
               "word_addr_bits", "membrane_bits", "timestep_bits", "bias_addr_bits",
               "layer_bits", "sel_bits")


def descriptor_widths(config, *, bias_depth, max_layers):
    """The widths the descriptor and the sequencer's ports use, derived from ``config``."""
    return {
        "addr_bits": config.addr_bits,
        "weight_addr_bits": config.tap_weight_addr_bits,   # a tap's (half rows if packed)
        "coord_bits": config.coord_bits,
        "channel_bits": config.channel_bits,
        "count_bits": config.group_bits + 1,   # a group count 1 .. max_groups
        "word_addr_bits": config.spike_addr_bits,
        "membrane_bits": config.core_membrane_bits,   # the aggregation core's width
        "timestep_bits": config.timestep_bits + 1,
        "bias_addr_bits": max(1, (bias_depth - 1).bit_length()),
        "layer_bits": max(1, (max_layers - 1).bit_length()),
        "sel_bits": max(1, (config.spike_bitmaps - 1).bit_length()),
    }


def layer_layout(*, addr_bits, weight_addr_bits, count_bits, word_addr_bits, membrane_bits,
                 timestep_bits, bias_addr_bits, layer_bits, sel_bits, **_):
    """A layer row: the output map, the neurons, the bias rows and the segments.

    ``weight_base`` is group 0's first weight row, ``group_stride`` the rows of one group
    (all segments); ``positions``/``groups``/``out_words`` describe the output bitmap
    ``out_sel``; ``fold`` ORs each channel's lanes into a fused max-pool's bitmap
    (space-to-depth, ``rtl/spike_writer.py``); ``output`` marks the non-spiking output
    layer, whose group ``g`` keeps its membranes at rows ``g * positions ...`` for the host.
    """
    return data.StructLayout({
        "direct": unsigned(1),
        "pool": unsigned(1),
        "fold": unsigned(1),
        "last": unsigned(1),
        "output": unsigned(1),
        "out_sel": unsigned(sel_bits),
        "timesteps": unsigned(timestep_bits),
        "weight_base": unsigned(weight_addr_bits),
        "group_stride": unsigned(weight_addr_bits),
        "positions": unsigned(addr_bits + 1),
        "groups": unsigned(count_bits),
        "out_words": unsigned(word_addr_bits + 1),
        "bias_base": unsigned(bias_addr_bits),
        "neuron": neuron_params_layout(membrane_bits),
        "initial_membrane": signed(membrane_bits),
        "seg_base": unsigned(layer_bits),
        "seg_count": unsigned(MAX_SEGMENTS.bit_length()),
    })


def segment_layout(*, addr_bits, weight_addr_bits, coord_bits, channel_bits, count_bits,
                   word_addr_bits, sel_bits, **_):
    """A segment row: what one source scans (or reads from the pixels) and how.

    ``geometry`` is the tap generator's (and the first-layer block's) 2D geometry of a
    plane, its ``weight_base`` the segment's first row within a group (in half rows when
    ``packed``: two weight rows per memory row, ``rtl/pe_array.py``); ``in_*`` the scan of
    one plane of the bitmap ``in_sel`` (``in_words`` per timestep); ``depth_*`` the plane
    loop (``docs/conv3d.md``) with the products the host computed: ``depth_stride_words``
    = ``s_d * plane_words``, ``depth_pad_words`` = ``p_d * plane_words``, ``kd_rows`` =
    weight rows per kernel plane, ``out_plane`` = bank rows per output plane,
    ``pixel_step`` = pixels per output plane of a ``mac`` segment.
    """
    size = unsigned(coord_bits + 1)
    words = unsigned(word_addr_bits + 1)
    return data.StructLayout({
        "mac": unsigned(1),
        "packed": unsigned(1),
        "in_sel": unsigned(sel_bits),
        "geometry": geometry_layout(coord_bits=coord_bits, weight_addr_bits=weight_addr_bits),
        "in_channels": unsigned(channel_bits + 1),
        "in_positions": unsigned(addr_bits + 1),
        "in_groups": unsigned(count_bits),
        "in_width": unsigned(coord_bits + 1),  # a full 2**coord_bits map fits
        "in_words": words,
        "plane_words": words,
        "depth_out": size,
        "depth_kernel": size,
        "depth_in": size,
        "depth_stride": size,
        "depth_pad": size,
        "depth_stride_words": words,
        "depth_pad_words": words,
        "kd_rows": unsigned(weight_addr_bits),
        "out_plane": unsigned(addr_bits + 1),
        "pixel_step": unsigned(PIXEL_STEP_BITS),
    })


def descriptor_layout(**widths):
    """One row of the descriptor table: ``{"layer": ...}`` or ``{"segment": ...}``
    (written by the host, ``rtl/program.py``)."""
    return data.UnionLayout({"layer": layer_layout(**widths),
                             "segment": segment_layout(**widths)})


class Sequencer(wiring.Component):
    """The schedule's finite-state machines (see the module docstring).

    Parameters
    ----------
    widths : dict
        :func:`descriptor_widths` of the design.
    counter_bits : int
        Width of the per-layer spike counters.

    Members
    -------
    start : In(1)
        Run the table from descriptor 0 (ignored while ``busy``).
    busy : Out(1)
        High from the cycle after ``start`` up to and including the ``done`` cycle.
    done : Out(1)
        One-cycle strobe: the last layer has finished.
    table : Out(WordReadSignature(layer_bits, descriptor_layout))
        Read port of the descriptor table for the layer rows.
    segments : Out(WordReadSignature(layer_bits, descriptor_layout))
        A second read port of the same table, for the segment rows.
    desc : Out(layer_layout)
        The current layer row (valid from ``LOAD`` on).
    seg : Out(segment_layout)
        The current segment row (valid while the fill side runs a pass).
    bias : Out(WordReadSignature(bias_addr_bits, 1))
        Address and enable of the bias memory's read port (the data goes to the top).
    layer, group, step : Out
        Descriptor index, channel group and phase ``k`` (the sweep drains timestep ``k``).
    scan_start, scan_params : Out
        The event scanner's start strobe and parameters.
    geometry : Out(geometry_layout)
        The pass's geometry with its weight base (tap generator, first-layer block, pool).
    out_offset : Out(addr_bits)
        Added to the bank addresses of the PE array and the first-layer block.
    pixel_offset : Out(PIXEL_STEP_BITS)
        Added to the first-layer block's pixel addresses.
    pool_start : Out(1)
        Starts the max-pool pass (with the scanner).
    pool_done : In(1)
    fill_marker : In(1)
        The PE array takes an end marker this cycle.
    fill_done : In(1)
        The PE array's ``done``.
    mac_start : Out(1)
    mac_done : In(1)
    sweep_start, sweep_params : Out
    sweep_done : In(1)
    write_params : Out(write_params_layout)
        Where the sweep's spike rows go.
    membrane_offset : Out(addr_bits)
        Added to the sweep's membrane addresses (``g * positions`` in the output layer).
    swap : Out(1)
        The ping-pong swap strobe.
    spikes : In(range(MAX_PES + 1))
        Spikes written this cycle (the spike writer's count, at most one per lane).
    counts : Out(WordWriteSignature(layer_bits, counter_bits))
        Write port of the per-layer spike counters.

    Raises
    ------
    TypeError
        If ``widths`` does not have exactly the keys of :func:`descriptor_widths`
        (``WIDTH_NAMES``) or a width or ``counter_bits`` is not a positive integer.
    """

    def __init__(self, *, widths, counter_bits=32):
        if not isinstance(widths, dict) or set(widths) != set(WIDTH_NAMES):
            raise TypeError(f"Widths must be a dict with the keys of descriptor_widths(), not "
                            f"{widths!r}")
        for name in WIDTH_NAMES:
            check_int(widths[name], f"Width {name!r}")
        check_int(counter_bits, "Counter width")
        self._widths = dict(widths)
        w = self._widths
        self._desc_layout = descriptor_layout(**w)
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1),
            "table": Out(WordReadSignature(addr_bits=w["layer_bits"],
                                           data_shape=self._desc_layout)),
            "segments": Out(WordReadSignature(addr_bits=w["layer_bits"],
                                              data_shape=self._desc_layout)),
            "desc": Out(layer_layout(**w)),
            "seg": Out(segment_layout(**w)),
            "bias": Out(WordReadSignature(addr_bits=w["bias_addr_bits"], data_shape=1)),
            "layer": Out(w["layer_bits"]),
            "group": Out(w["count_bits"]),
            "step": Out(w["timestep_bits"]),
            "scan_start": Out(1),
            "scan_params": Out(scan_params_layout(
                word_addr_bits=w["word_addr_bits"], position_bits=w["addr_bits"] + 1,
                group_bits=w["count_bits"], coord_bits=w["coord_bits"])),
            "geometry": Out(geometry_layout(coord_bits=w["coord_bits"],
                                            weight_addr_bits=w["weight_addr_bits"])),
            "out_offset": Out(w["addr_bits"]),
            "pixel_offset": Out(PIXEL_STEP_BITS),
            "fill_marker": In(1), "fill_done": In(1),
            "mac_start": Out(1), "mac_done": In(1),
            "pool_start": Out(1), "pool_done": In(1),
            "sweep_start": Out(1),
            "sweep_params": Out(sweep_params_layout(addr_bits=w["addr_bits"],
                                                    membrane_bits=w["membrane_bits"])),
            "sweep_done": In(1),
            "write_params": Out(write_params_layout(word_addr_bits=w["word_addr_bits"],
                                                    group_bits=w["count_bits"])),
            "membrane_offset": Out(w["addr_bits"]),
            "swap": Out(1),
            "spikes": In(range(MAX_PES + 1)),
            "counts": Out(WordWriteSignature(addr_bits=w["layer_bits"],
                                             data_shape=unsigned(counter_bits))),
        })

    @property
    def widths(self):
        return dict(self._widths)

    @property
    def descriptor_layout(self):
        return self._desc_layout

    def elaborate(self, platform):
        m = Module()
        w = self._widths
        desc, seg = self.desc, self.seg
        # The read ports hold their rows: the layer's for the layer, a segment's for its passes.
        m.d.comb += [desc.eq(self.table.data.layer), seg.eq(self.segments.data.segment)]

        group_base = Signal(w["weight_addr_bits"])             # weight_base + g * stride
        out_word = Signal.like(self.write_params.word_base)    # (k - 1) * out_words + g
        offset = Signal.like(self.membrane_offset)             # g * positions
        spike_count = Signal.like(self.counts.data)
        k = self.step

        fills = Signal()   # this phase has a fill side
        drains = Signal()  # this phase has a sweep
        m.d.comb += [
            fills.eq(Mux(desc.direct, k == 0, k < desc.timesteps)),
            drains.eq((k != 0) & ~desc.pool),
            self.sweep_params.positions.eq(desc.positions),
            self.sweep_params.first_step.eq(k == 1),
            self.sweep_params.keep_current.eq(desc.direct & (k != desc.timesteps)),
            self.sweep_params.initial_membrane.eq(desc.initial_membrane),
            self.write_params.word_base.eq(out_word),
            self.write_params.groups.eq(desc.groups),
            self.write_params.fold.eq(desc.fold),
            self.membrane_offset.eq(Mux(desc.output, offset, 0)),
            self.bias.addr.eq(desc.bias_base + self.group),
            self.counts.addr.eq(self.layer),
            self.counts.data.eq(spike_count),
        ]
        with m.If(self.start & ~self.busy):
            m.d.sync += spike_count.eq(0)
        with m.Elif(self.counts.en):
            m.d.sync += spike_count.eq(self.spikes)
        with m.Else():
            m.d.sync += spike_count.eq(spike_count + self.spikes)

        kick = Signal()          # the PHASE cycle of a phase with a fill side
        fill_finished = Signal()  # the fill side of this phase is over (registered)
        finishing = Signal()      # ... it ends in this cycle
        sweep_seen = Signal()
        with m.If(self.sweep_done):
            m.d.sync += sweep_seen.eq(1)
        fill_ok = ~fills | fill_finished | finishing
        drain_ok = ~drains | sweep_seen | self.sweep_done
        # A max-pool layer has T phases (no sweep), the others T + 1.
        last_phase = Mux(desc.pool, k + 1 == desc.timesteps, k == desc.timesteps)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [self.table.addr.eq(0), self.table.en.eq(1)]
                    m.d.sync += self.layer.eq(0)
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [self.group.eq(0), group_base.eq(desc.weight_base), offset.eq(0)]
                m.next = "GROUP"
            with m.State("GROUP"):
                m.d.comb += [self.busy.eq(1), self.bias.en.eq(1)]
                m.d.sync += [k.eq(0), out_word.eq(self.group)]
                m.next = "PHASE"
            with m.State("PHASE"):
                m.d.comb += [self.busy.eq(1), self.sweep_start.eq(drains), kick.eq(fills)]
                m.d.sync += [sweep_seen.eq(0), fill_finished.eq(0)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(fill_ok & drain_ok):
                    m.next = "SWAP"
            with m.State("SWAP"):
                m.d.comb += [self.busy.eq(1),
                             self.swap.eq(~desc.pool & (~desc.direct | (k == 0)))]
                m.d.sync += k.eq(k + 1)
                with m.If((k != 0) | desc.pool):
                    m.d.sync += out_word.eq(out_word + desc.out_words)
                with m.If(~last_phase):
                    m.next = "PHASE"
                with m.Elif(~desc.pool & (self.group + 1 != desc.groups)):
                    m.d.sync += [self.group.eq(self.group + 1),
                                 group_base.eq(group_base + desc.group_stride),
                                 offset.eq(offset + desc.positions)]
                    m.next = "GROUP"
                with m.Else():
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += [self.busy.eq(1), self.counts.en.eq(1)]
                with m.If(desc.last):
                    m.next = "DONE"
                with m.Else():
                    m.d.comb += [self.table.addr.eq(self.layer + 1), self.table.en.eq(1)]
                    m.d.sync += self.layer.eq(self.layer + 1)
                    m.next = "LOAD"
            with m.State("DONE"):
                m.d.comb += [self.busy.eq(1), self.done.eq(1)]
                m.next = "IDLE"

        self._fill_side(m, w, group_base, kick, fill_finished, finishing)
        return m

    def _fill_side(self, m, w, group_base, kick, fill_finished, finishing):
        """The fill side's state machine: segments, their passes, the pass parameters."""
        desc, seg = self.desc, self.seg
        size = w["coord_bits"] + 1
        words = w["word_addr_bits"] + 1
        seg_words = Array(Signal(w["word_addr_bits"], name=f"seg_word{i}")
                          for i in range(MAX_SEGMENTS))   # k * in_words of each segment
        index = Signal(range(MAX_SEGMENTS + 1))
        od, kd = Signal(size), Signal(size)
        # A product with a stride (at most MAX_STRIDE) needs STRIDE_BITS more bits; the
        # address sums below one carry bit more and one sign bit.
        od_sd = Signal(size + STRIDE_BITS)                 # od * s_d
        od_words, kd_words = Signal(words + STRIDE_BITS), Signal(words + STRIDE_BITS)
        w_off = Signal(w["weight_addr_bits"])              # kd * kd_rows
        out_off = Signal(w["addr_bits"])                   # od * out_plane
        pix_off = Signal(PIXEL_STEP_BITS)                  # od * pixel_step
        marker_seen, mac_seen, pool_seen = Signal(), Signal(), Signal()
        with m.If(self.fill_marker):
            m.d.sync += marker_seen.eq(1)
        with m.If(self.mac_done):
            m.d.sync += mac_seen.eq(1)
        with m.If(self.pool_done):
            m.d.sync += pool_seen.eq(1)

        plane = Signal(signed(size + STRIDE_BITS + 2))     # d = od * s_d - p_d + kd
        first = Signal(signed(words + STRIDE_BITS + 2))
        m.d.comb += [
            plane.eq(_as_signed(od_sd + kd) - seg.depth_pad),
            first.eq(_as_signed(seg_words[index] + od_words + kd_words) - seg.depth_pad_words),
            self.geometry.eq(seg.geometry),
            # A packed segment counts half rows from twice the group's first (full) row.
            self.geometry.weight_base.eq(Mux(seg.packed, group_base << 1, group_base)
                                         + seg.geometry.weight_base + w_off),
            self.scan_params.first_word.eq(first),
            self.scan_params.positions.eq(seg.in_positions),
            self.scan_params.groups.eq(seg.in_groups),
            self.scan_params.width.eq(seg.in_width),
            self.out_offset.eq(out_off),
            self.pixel_offset.eq(pix_off),
        ]

        def restart_loop():
            return [od.eq(0), kd.eq(0), od_sd.eq(0), od_words.eq(0), kd_words.eq(0),
                    w_off.eq(0), out_off.eq(0), pix_off.eq(0)]

        def read_segment(number):
            m.d.comb += [self.segments.addr.eq(desc.seg_base + number), self.segments.en.eq(1)]
            m.d.sync += [index.eq(number), *restart_loop()]

        last_kd = seg.mac | (kd + 1 == seg.depth_kernel)
        last_od = od + 1 == seg.depth_out

        def step():
            """The loop step after a pass (or a skipped one): next plane, segment or end."""
            with m.If(~last_kd):
                m.d.sync += [kd.eq(kd + 1), kd_words.eq(kd_words + seg.plane_words),
                             w_off.eq(w_off + seg.kd_rows)]
                m.next = "F_PASS"
            with m.Elif(~last_od):
                m.d.sync += [kd.eq(0), kd_words.eq(0), w_off.eq(0), od.eq(od + 1),
                             od_sd.eq(od_sd + seg.depth_stride),
                             od_words.eq(od_words + seg.depth_stride_words),
                             out_off.eq(out_off + seg.out_plane),
                             pix_off.eq(pix_off + seg.pixel_step)]
                m.next = "F_PASS"
            with m.Else():
                m.d.sync += seg_words[index].eq(seg_words[index] + seg.in_words)
                with m.If(index + 1 != desc.seg_count):
                    read_segment(index + 1)
                    m.next = "F_PASS"
                with m.Else():
                    m.d.comb += finishing.eq(1)
                    m.d.sync += fill_finished.eq(1)
                    m.next = "F_IDLE"

        with m.FSM(name="fill"):
            with m.State("F_IDLE"):
                with m.If(kick):
                    read_segment(0)
                    m.next = "F_PASS"
            with m.State("F_PASS"):
                runs = seg.mac | ((plane >= 0) & (plane < seg.depth_in))
                with m.If(runs):
                    m.d.comb += [self.scan_start.eq(~seg.mac), self.mac_start.eq(seg.mac),
                                 self.pool_start.eq(~seg.mac & desc.pool)]
                    m.d.sync += [marker_seen.eq(0), mac_seen.eq(0), pool_seen.eq(0)]
                    m.next = "F_RUN"
                with m.Else():
                    step()
            with m.State("F_RUN"):
                done = Mux(seg.mac, mac_seen | self.mac_done,
                           Mux(desc.pool, pool_seen | self.pool_done,
                               marker_seen & self.fill_done))
                with m.If(done):
                    step()
        # A new channel group starts its timesteps from the first word again.
        with m.If(self.bias.en):
            m.d.sync += [word.eq(0) for word in seg_words]
