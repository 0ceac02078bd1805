"""Aggregation sweep: drives one timestep of the aggregation core over every position.

For positions ``0 .. positions-1`` in order, the sweep reads the partial-sum bank row (the
timestep's current) and the membrane row, hands both to the aggregation core, and when the
core's result comes back it writes the new membrane, clears the bank row (so the bank is
ready for the PE array two timesteps later) and forwards the spike row to the spike writer.

Two per-sweep options cover the special cases of ``docs/accelerator.md``:

* ``first_step``: the membrane read is replaced by the layer's initial membrane, so no
  separate initialisation pass is needed before timestep 1;
* ``keep_current``: the bank row is not cleared, because a direct-encoded layer's current is
  computed once per image and reused every timestep.

The ``bias`` row is added to every current read from the bank (lane by lane, wrapping at
``psum_bits``), so the banks only ever hold spike-driven sums and are cleared to zero; it is
zero when left unconnected.

Cycle cost: with the core and the spike stream always ready, a sweep of ``n`` positions
takes ``n + core latency + 2`` cycles, counting the cycle that samples ``start`` as the first
and the cycle with the one-cycle ``done`` strobe as the last: one cycle issues the first read,
rows then enter the core one per cycle, the last result needs the core's latency, and
``done`` follows the last write.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import (
    RowPortSignature, aggregation_input_layout, aggregation_output_layout, row_layout,
    spike_output_layout,
)

__all__ = ["AggregationSweep", "sweep_params_layout"]


def sweep_params_layout(*, addr_bits, membrane_bits):
    """Per-sweep settings, sampled on ``start``."""
    return data.StructLayout({
        "positions": unsigned(addr_bits + 1),
        "first_step": unsigned(1),
        "keep_current": unsigned(1),
        "initial_membrane": signed(membrane_bits),
    })


class AggregationSweep(wiring.Component):
    """Sweep the aggregation core over one timestep of one channel group.

    Parameters
    ----------
    lanes, psum_bits, membrane_bits, addr_bits : int
        As for :class:`spikeforge.rtl.aggregation.AggregationCore`.

    Members
    -------
    params : In(sweep_params_layout(...))
    bias : In(row_layout(psum_bits, lanes))
        Added to every current (constant during a sweep; zero when unconnected).
    start : In(1)
        Begins a sweep (ignored while ``busy``).
    busy : Out(1)
        High from the cycle after ``start`` until ``done``.
    done : Out(1)
        One-cycle strobe after the last row has been written back.
    bank : Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes))
        The partial-sum bank being drained (through the ping-pong controller).
    membrane : Out(RowPortSignature(addr_bits=addr_bits, bits=membrane_bits, lanes=lanes))
        The membrane memory.
    o_core : Out(stream.Signature(aggregation_input_layout(...)))
        To the aggregation core's ``i_stream``.
    i_core : In(stream.Signature(aggregation_output_layout(...)))
        From the aggregation core's ``o_stream``.
    o_spikes : Out(stream.Signature(spike_output_layout(...)))
        Spike rows, in position order, to the spike writer.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    """

    def __init__(self, *, lanes, psum_bits, membrane_bits, addr_bits):
        for value, what in ((lanes, "Lane count"), (psum_bits, "Partial-sum width"),
                            (membrane_bits, "Membrane width"), (addr_bits, "Address width")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"{what} must be a positive integer, not {value!r}")
        self._lanes = lanes
        self._params_layout = sweep_params_layout(addr_bits=addr_bits,
                                                  membrane_bits=membrane_bits)
        super().__init__({
            "params": In(self._params_layout),
            "bias": In(row_layout(psum_bits, lanes)),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "bank": Out(RowPortSignature(addr_bits=addr_bits, bits=psum_bits, lanes=lanes)),
            "membrane": Out(RowPortSignature(addr_bits=addr_bits, bits=membrane_bits,
                                             lanes=lanes)),
            "o_core": Out(stream.Signature(aggregation_input_layout(
                addr_bits=addr_bits, lanes=lanes, psum_bits=psum_bits,
                membrane_bits=membrane_bits))),
            "i_core": In(stream.Signature(aggregation_output_layout(
                addr_bits=addr_bits, lanes=lanes, membrane_bits=membrane_bits))),
            "o_spikes": Out(stream.Signature(spike_output_layout(addr_bits=addr_bits,
                                                                 lanes=lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        params = Signal(self._params_layout)
        next_read = Signal.like(params.positions)   # next position to read
        current_addr = Signal.like(self.o_core.payload.addr)  # position on the read ports
        have_row = Signal()                          # read data is valid and not yet taken
        written = Signal.like(params.positions)      # rows written back so far

        # Read side: present the row on the read ports to the core; fetch the next on transfer.
        core_in = self.o_core.payload
        m.d.comb += [
            self.o_core.valid.eq(have_row),
            core_in.addr.eq(current_addr),
        ]
        for lane in range(self._lanes):
            m.d.comb += core_in.current[lane].eq(self.bank.r_data[lane] + self.bias[lane])
            m.d.comb += core_in.membrane[lane].eq(
                Mux(params.first_step, params.initial_membrane, self.membrane.r_data[lane]))

        def fetch(position):
            return [self.bank.r_addr.eq(position), self.bank.r_en.eq(1),
                    self.membrane.r_addr.eq(position), self.membrane.r_en.eq(1)]

        # Write side: membrane back, bank row cleared, spikes forwarded; stalls only on spikes.
        result = self.i_core.payload
        accept = Signal()
        m.d.comb += [
            self.o_spikes.valid.eq(self.i_core.valid),
            self.o_spikes.payload.addr.eq(result.addr),
            self.o_spikes.payload.spikes.eq(result.spikes),
            self.i_core.ready.eq(self.o_spikes.ready),
            accept.eq(self.i_core.valid & self.o_spikes.ready),
            self.membrane.w_addr.eq(result.addr),
            self.membrane.w_data.eq(result.membrane),
            self.membrane.w_en.eq(accept),
            self.bank.w_addr.eq(result.addr),
            self.bank.w_data.eq(0),
            self.bank.w_en.eq(accept & ~params.keep_current),
        ]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [params.eq(self.params), written.eq(0), current_addr.eq(0)]
                    with m.If(self.params.positions != 0):
                        m.d.comb += fetch(0)
                        m.d.sync += [have_row.eq(1), next_read.eq(1)]
                    m.next = "SWEEP"
            with m.State("SWEEP"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.o_core.valid & self.o_core.ready):
                    with m.If(next_read != params.positions):
                        m.d.comb += fetch(next_read)
                        m.d.sync += [current_addr.eq(next_read), next_read.eq(next_read + 1)]
                    with m.Else():
                        m.d.sync += have_row.eq(0)
                with m.If(accept):
                    m.d.sync += written.eq(written + 1)
                with m.If(written == params.positions):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
