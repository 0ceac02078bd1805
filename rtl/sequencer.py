"""Sequencer: walks the layer-descriptor table and runs the layer-major schedule.

For each layer (one descriptor row), for each channel group, the sequencer runs ``T + 1``
*phases* ``k = 0 .. T``. In phase ``k`` the fill side computes the current of timestep
``k + 1`` into the fill bank while the aggregation sweep drains timestep ``k`` from the
other bank (``docs/accelerator.md`` section 1):

* a spiking-input layer: the event scanner scans input timestep ``k + 1`` (``k < T``), the
  tap generator and the PE array accumulate it; the sweep (``k >= 1``) drains timestep ``k``
  and clears its rows; the banks swap at the end of every phase;
* a direct-encoded layer: in phase 0 the reference MAC writes the image's current (bias
  included) into the fill bank and the banks swap; phases ``1 .. T`` sweep that bank with
  ``keep_current`` (no swap), except the last, which clears it, so that every bank is zero
  when a layer ends.

States and their cycles (the cycle model, ``rtl/cycle_model.py``, adds them up):

* ``IDLE``: waits for ``start``; the cycle that samples ``start`` issues the read of
  descriptor 0 and is not counted;
* ``LOAD`` (1 cycle per layer): the descriptor is on the table's read port (it holds there
  for the whole layer);
* ``GROUP`` (1 cycle per group): reads the group's bias row (it holds for the group);
* ``PHASE`` (1 cycle per phase): strobes the starts of the phase's blocks;
* ``WAIT``: until the fill side is done (the PE array's ``done`` after it has taken the
  phase's end marker, or the MAC's ``done``) and the sweep's ``done`` has been seen;
* ``SWAP`` (1 cycle per phase): swaps the banks (a side is never busy then), advances ``k``;
* ``NEXT`` (1 cycle per layer): stores the layer's spike count, reads the next descriptor;
* ``DONE`` (1 cycle): ``done`` strobe.

A max-pool layer has one group and ``T`` phases ``k = 0 .. T - 1``: the scanner and the
max-pool pass (``rtl/maxpool.py``) start together on input timestep ``k + 1`` and the phase
waits for the pass's ``done``; no sweep, no swap.

So a phase that starts (``PHASE``) in cycle ``S`` ends with ``SWAP`` in cycle
``max(S + 1, F, D) + 1``, where ``F`` is the first cycle the fill side reports done and
``D`` the cycle of the sweep's ``done`` strobe: ``max(1, F - S, D - S) + 2`` cycles.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .aggregation_sweep import sweep_params_layout
from .event_scanner import scan_params_layout
from .interfaces import WordReadSignature, WordWriteSignature, neuron_params_layout
from .spike_writer import write_params_layout
from .tap_generator import geometry_layout

__all__ = ["Sequencer", "descriptor_layout", "descriptor_widths"]


def descriptor_widths(config, *, bias_depth, max_layers):
    """The widths the descriptor and the sequencer's ports use, derived from ``config``."""
    return {
        "addr_bits": config.addr_bits,
        "weight_addr_bits": config.weight_addr_bits,
        "coord_bits": config.coord_bits,
        "channel_bits": config.channel_bits,
        "count_bits": config.group_bits + 1,   # a group count 1 .. max_groups
        "word_addr_bits": config.spike_addr_bits,
        "membrane_bits": config.membrane_bits,
        "timestep_bits": config.timestep_bits + 1,
        "bias_addr_bits": max(1, (bias_depth - 1).bit_length()),
        "layer_bits": max(1, (max_layers - 1).bit_length()),
    }


def descriptor_layout(*, addr_bits, weight_addr_bits, coord_bits, channel_bits, count_bits,
                      word_addr_bits, membrane_bits, timestep_bits, bias_addr_bits, layer_bits):
    """One row of the layer-descriptor table (written by the host, ``rtl/program.py``).

    ``geometry.weight_base`` is the layer's first weight row; group ``g`` adds
    ``g * group_stride``. ``in_*`` describe the input bitmap of a spiking-input layer (one
    timestep is ``in_words`` words), ``positions``/``groups``/``out_words`` the output.
    ``in_sel``/``out_sel`` pick the bitmaps; ``output`` marks the non-spiking output layer,
    whose group ``g`` keeps its membranes at rows ``g * positions ...`` for the host.
    """
    del layer_bits  # part of the widths for the sequencer, not a descriptor field
    return data.StructLayout({
        "direct": unsigned(1),
        "pool": unsigned(1),
        "last": unsigned(1),
        "output": unsigned(1),
        "in_sel": unsigned(1),
        "out_sel": unsigned(1),
        "timesteps": unsigned(timestep_bits),
        "geometry": geometry_layout(coord_bits=coord_bits, weight_addr_bits=weight_addr_bits),
        "group_stride": unsigned(weight_addr_bits),
        "in_channels": unsigned(channel_bits + 1),
        "in_positions": unsigned(addr_bits + 1),
        "in_groups": unsigned(count_bits),
        "in_width": unsigned(coord_bits + 1),  # a full 2**coord_bits map fits
        "in_words": unsigned(word_addr_bits + 1),
        "positions": unsigned(addr_bits + 1),
        "groups": unsigned(count_bits),
        "out_words": unsigned(word_addr_bits + 1),
        "bias_base": unsigned(bias_addr_bits),
        "neuron": neuron_params_layout(membrane_bits),
        "initial_membrane": signed(membrane_bits),
    })


class Sequencer(wiring.Component):
    """The schedule's finite-state machine (see the module docstring for its states).

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
        Read port of the descriptor table.
    desc : Out(descriptor_layout)
        The current layer's descriptor (valid from ``LOAD`` on).
    bias : Out(WordReadSignature(bias_addr_bits, 1))
        Address and enable of the bias memory's read port (the data goes to the top).
    layer, group, step : Out
        Descriptor index, channel group and phase ``k`` (the sweep drains timestep ``k``).
    scan_start, scan_params : Out
        The event scanner's start strobe and parameters.
    geometry : Out(geometry_layout)
        Geometry with the group's weight base (tap generator and MAC).
    pool_start : Out(1)
        Starts the max-pool pass (with the scanner) in a max-pool layer's phase.
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
    spikes : In(range)
        Spikes written this cycle (the spike writer's count).
    counts : Out(WordWriteSignature(layer_bits, counter_bits))
        Write port of the per-layer spike counters.
    """

    def __init__(self, *, widths, counter_bits=32):
        self._widths = dict(widths)
        w = self._widths
        self._desc_layout = descriptor_layout(**w)
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1),
            "table": Out(WordReadSignature(addr_bits=w["layer_bits"],
                                           data_shape=self._desc_layout)),
            "desc": Out(self._desc_layout),
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
            "spikes": In(16),
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
        desc = self.desc
        m.d.comb += desc.eq(self.table.data)  # the read port holds it for the whole layer

        group_base = Signal(self._widths["weight_addr_bits"])  # weight_base + g * stride
        in_word = Signal.like(self.scan_params.first_word)     # first word of timestep k + 1
        out_word = Signal.like(self.write_params.word_base)    # (k - 1) * out_words + g
        offset = Signal.like(self.membrane_offset)             # g * positions
        marker_seen = Signal()
        mac_seen = Signal()
        pool_seen = Signal()
        sweep_seen = Signal()
        spike_count = Signal.like(self.counts.data)

        fills = Signal()   # this phase has a fill side
        drains = Signal()  # this phase has a sweep
        k = self.step
        m.d.comb += [
            fills.eq(Mux(desc.direct, k == 0, k < desc.timesteps)),
            drains.eq((k != 0) & ~desc.pool),
            self.geometry.eq(desc.geometry),
            self.geometry.weight_base.eq(group_base),
            self.scan_params.first_word.eq(in_word),
            self.scan_params.positions.eq(desc.in_positions),
            self.scan_params.groups.eq(desc.in_groups),
            self.scan_params.width.eq(desc.in_width),
            self.sweep_params.positions.eq(desc.positions),
            self.sweep_params.first_step.eq(k == 1),
            self.sweep_params.keep_current.eq(desc.direct & (k != desc.timesteps)),
            self.sweep_params.initial_membrane.eq(desc.initial_membrane),
            self.write_params.word_base.eq(out_word),
            self.write_params.groups.eq(desc.groups),
            self.membrane_offset.eq(Mux(desc.output, offset, 0)),
            self.bias.addr.eq(desc.bias_base + self.group),
            self.counts.addr.eq(self.layer),
            self.counts.data.eq(spike_count),
        ]
        with m.If(self.fill_marker):
            m.d.sync += marker_seen.eq(1)
        with m.If(self.mac_done):
            m.d.sync += mac_seen.eq(1)
        with m.If(self.pool_done):
            m.d.sync += pool_seen.eq(1)
        with m.If(self.sweep_done):
            m.d.sync += sweep_seen.eq(1)
        with m.If(self.start & ~self.busy):
            m.d.sync += spike_count.eq(0)
        with m.Elif(self.counts.en):
            m.d.sync += spike_count.eq(self.spikes)
        with m.Else():
            m.d.sync += spike_count.eq(spike_count + self.spikes)

        fill_ok = ~fills | Mux(desc.direct, mac_seen | self.mac_done,
                               Mux(desc.pool, pool_seen | self.pool_done,
                                   marker_seen & self.fill_done))
        # A max-pool layer has T phases (no sweep), the others T + 1.
        last_phase = Mux(desc.pool, k + 1 == desc.timesteps, k == desc.timesteps)
        drain_ok = ~drains | sweep_seen | self.sweep_done

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [self.table.addr.eq(0), self.table.en.eq(1)]
                    m.d.sync += self.layer.eq(0)
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [self.group.eq(0), group_base.eq(desc.geometry.weight_base),
                             offset.eq(0)]
                m.next = "GROUP"
            with m.State("GROUP"):
                m.d.comb += [self.busy.eq(1), self.bias.en.eq(1)]
                m.d.sync += [k.eq(0), in_word.eq(0), out_word.eq(self.group)]
                m.next = "PHASE"
            with m.State("PHASE"):
                m.d.comb += [
                    self.busy.eq(1),
                    self.scan_start.eq(fills & ~desc.direct),
                    self.mac_start.eq(fills & desc.direct),
                    self.pool_start.eq(fills & desc.pool),
                    self.sweep_start.eq(drains),
                ]
                m.d.sync += [marker_seen.eq(0), mac_seen.eq(0), sweep_seen.eq(0),
                             pool_seen.eq(0)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(fill_ok & drain_ok):
                    m.next = "SWAP"
            with m.State("SWAP"):
                m.d.comb += [self.busy.eq(1),
                             self.swap.eq(~desc.pool & (~desc.direct | (k == 0)))]
                m.d.sync += [k.eq(k + 1), in_word.eq(in_word + desc.in_words)]
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
        return m
