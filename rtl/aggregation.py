"""Aggregation core: leak, integrate, saturate, fire and reset one row of neurons per cycle.

For every lane of an input row (``docs/neuron.md`` section 2, ``golden.neuron.aggregate``)::

    V = sat(leak(V) + (I >>> k))         # saturate to the network's membrane width
    s = fire & (V >= threshold)
    V = V - threshold  or  0   where s   # reset by subtraction or to zero

and the row goes out with the written-back ``V`` and the spike bits.

Pipeline
--------
Three register stages, named by the letter of their signals:

* ``k_`` (leak): ``leak(V)`` and the row's current ``I >>> k`` (``k`` the neuron's
  ``current_shift``, built only with ``current_shifter=True``: one runtime shifter per
  lane); the membrane RAM, the leak multiplier and the shifter end here, so none of them
  shares a clock period with the add (the longest path of the board design until this
  stage existed);
* ``l_`` (integrate): ``leak(V) + I`` at ``max(membrane_bits, psum_bits) + 1`` bits,
  so the sum never wraps before it is saturated;
* output registers (``o_stream.payload``): saturate, fire, reset.

Each stage is a register slice (``ready = ~valid | ready of the next stage``): one row per
cycle when the consumer is always ready, and a row is accepted on ``i_stream`` the same cycle
a row leaves on ``o_stream`` when the pipeline is full. Latency: a row accepted at clock
edge ``k`` is offered on ``o_stream`` right after edge ``k + 2``; ``N`` rows take
``N + 2`` edges from the first input transfer to the last output transfer when nobody pauses.

Leak
----
``NONE``: ``V``; ``SHIFT``: ``V - (V >>> leak_shift)`` (arithmetic, runtime shift);
``MUL``: ``(V * leak_factor) >>> leak_frac_bits``, built only with ``leak_multiplier=True``
(one ``membrane_bits x 17`` multiplier per lane, a DSP48 on a 7-series FPGA). Without the
multiplier a ``MUL`` layer is computed as ``NONE`` and a simulation ``Assert`` fails;
``AcceleratorConfig.fits`` rejects such networks before they get there.

With the multiplier (and ``membrane_bits <= MAX_LEAK_FRAC_BITS + 1``) the shift leak uses it
too: both leaks are ``(V * F) >>> Q`` with ``Q = MAX_LEAK_FRAC_BITS`` a constant, and the one
runtime shift that makes ``F`` (``2**(Q - leak_shift)`` or ``leak_factor * 2**(Q -
leak_frac_bits)``) is shared by all lanes: no lane has a barrel shifter, which were about a
third of the core's logic.

The narrower saturation width of ``params.membrane_narrow`` lets one design run networks with
narrower membranes. ``params`` must stay constant while rows are in flight (from the first
input transfer of a layer until its last output transfer). Simulation assertions check the
parameter ranges of ``docs/neuron.md`` while rows flow; they are built only when the core is
elaborated without a platform (simulator, ``verilog.convert``), not into a board build.
"""

from amaranth.hdl import Assert, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.manifest import MAX_LEAK_FRAC_BITS, MEMBRANE_BITS
from .interfaces import (
    PSUM_BITS,
    LeakKind, aggregation_input_layout, aggregation_output_layout, neuron_params_layout,
)
from .checks import check_int

__all__ = ["AggregationCore"]

class AggregationCore(wiring.Component):
    """Pipelined neuron update of one row of ``lanes`` neurons per cycle.

    Parameters
    ----------
    lanes : int
        Neurons per row (the number of PEs).
    psum_bits : int
        Width of the signed current ``I`` (2..64).
    membrane_bits : int
        Width of the signed membrane ``V`` (2..32).
    addr_bits : int
        Width of the row address, passed through unchanged.
    leak_multiplier : bool
        Build the multiplicative leak (one multiplier per lane).
    current_shifter : bool
        Build the current shift (``docs/neuron.md`` section 2: one ``psum_bits`` runtime
        right shifter per lane), which narrow-membrane networks need; without it
        ``params.current_shift`` must be 0 (a simulation ``Assert`` checks it).

    Members
    -------
    params : In(neuron_params_layout(membrane_bits))
        The layer's neuron parameters; constant while rows are in flight.
    i_stream : In(stream.Signature(aggregation_input_layout(...)))
        Address, current and previous membrane of one row.
    o_stream : Out(stream.Signature(aggregation_output_layout(...)))
        Address, written-back membrane and spikes of the row, in input order.

    Raises
    ------
    TypeError
        A parameter has the wrong type or is out of range.
    """

    #: Clock edges from a row's input transfer to its earliest output transfer.
    LATENCY = 3

    def __init__(self, *, lanes, psum_bits, membrane_bits, addr_bits, leak_multiplier=False,
                 current_shifter=False):
        check_int(lanes, "Lane count", 1)
        check_int(psum_bits, "Partial-sum width", *PSUM_BITS)
        check_int(membrane_bits, "Membrane width", *MEMBRANE_BITS)
        check_int(addr_bits, "Address width", 1)
        if not isinstance(leak_multiplier, bool):
            raise TypeError(f"Leak multiplier must be a bool, not {leak_multiplier!r}")
        if not isinstance(current_shifter, bool):
            raise TypeError(f"Current shifter must be a bool, not {current_shifter!r}")
        self._current_shifter = current_shifter
        self._lanes = lanes
        self._psum_bits = psum_bits
        self._membrane_bits = membrane_bits
        self._addr_bits = addr_bits
        self._leak_multiplier = leak_multiplier
        super().__init__({
            "params": In(neuron_params_layout(membrane_bits)),
            "i_stream": In(stream.Signature(aggregation_input_layout(
                addr_bits=addr_bits, lanes=lanes, psum_bits=psum_bits,
                membrane_bits=membrane_bits))),
            "o_stream": Out(stream.Signature(aggregation_output_layout(
                addr_bits=addr_bits, lanes=lanes, membrane_bits=membrane_bits))),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def psum_bits(self):
        return self._psum_bits

    @property
    def membrane_bits(self):
        return self._membrane_bits

    @property
    def addr_bits(self):
        return self._addr_bits

    @property
    def leak_multiplier(self):
        return self._leak_multiplier

    @property
    def current_shifter(self):
        return self._current_shifter

    def _leak_factor(self, m):
        """The one multiplier factor ``F`` at :data:`MAX_LEAK_FRAC_BITS` fraction bits that
        both leaks use, shared by all lanes (the runtime shifts happen here once, not per
        lane): ``2**(Q - leak_shift)`` for ``SHIFT``, ``leak_factor * 2**(Q - frac_bits)``
        for ``MUL``. Then ``(V * F) >>> Q`` is ``V >>> leak_shift`` or ``(V * factor) >>>
        frac_bits`` exactly: both are the floor of the same fraction."""
        params, frac = self.params, MAX_LEAK_FRAC_BITS
        factor = Signal(unsigned(frac + 1))
        shift_factor = Const(1 << frac, unsigned(frac + 1)) >> params.leak_shift
        mul_factor = (params.leak_factor << frac) >> params.leak_frac_bits
        m.d.comb += factor.eq(Mux(params.leak_kind == LeakKind.SHIFT, shift_factor,
                                  mul_factor))
        return factor

    def _leak(self, m, membrane, factor):
        """``leak(V)`` of one lane as a ``signed(membrane_bits)`` signal (``factor``: the
        shared :meth:`_leak_factor`, or ``None``: no multiplier, or a membrane too wide)."""
        params = self.params
        bits = self._membrane_bits
        leaked = Signal(signed(bits))
        if factor is not None:
            # One multiply per lane serves both leaks; its shift is a constant (wiring).
            # V - (V >>> k) and (V * f) >>> q (0 <= f <= 2**q, asserted) both lie between V
            # and 0, so they fit the membrane width (no wrap).
            scaled = (membrane * factor) >> MAX_LEAK_FRAC_BITS
            shift_leak, mul_leak = membrane - scaled, scaled
        else:
            shift_leak = membrane - (membrane >> params.leak_shift)
            if self._leak_multiplier:   # a membrane too wide for the shared factor
                mul_leak = (membrane * params.leak_factor) >> params.leak_frac_bits
            else:
                mul_leak = membrane  # MUL without a multiplier: NONE, flagged by an Assert
        m.d.comb += leaked.eq(Mux(params.leak_kind == LeakKind.SHIFT, shift_leak,
                                  Mux(params.leak_kind == LeakKind.MUL, mul_leak, membrane)))
        return leaked

    def elaborate(self, platform):
        m = Module()
        lanes, bits = self._lanes, self._membrane_bits
        params, i_stream, o_stream = self.params, self.i_stream, self.o_stream
        i_row, o_row = i_stream.payload, o_stream.payload
        sum_shape = signed(max(bits, self._psum_bits) + 1)

        # Register-slice handshakes: a stage takes a new row when it is empty or its row
        # leaves in the same cycle.
        k_valid = Signal()
        k_addr = Signal(self._addr_bits)
        k_leaked = Signal(data.ArrayLayout(signed(bits), lanes))
        k_current = Signal.like(i_row.current)
        l_valid = Signal()
        l_addr = Signal(self._addr_bits)
        l_sum = Signal(data.ArrayLayout(sum_shape, lanes))
        o_free = ~o_stream.valid | o_stream.ready
        l_free = ~l_valid | o_free
        k_free = ~k_valid | l_free
        m.d.comb += i_stream.ready.eq(k_free)

        # k_: leak. The multiplier's shared factor needs the shift leak's k <= Q, which holds
        # whenever k < membrane_bits <= Q + 1 (asserted); wider membranes keep a shifter.
        factor = (self._leak_factor(m) if self._leak_multiplier
                  and bits <= MAX_LEAK_FRAC_BITS + 1 else None)
        with m.If(k_free):
            m.d.sync += [k_valid.eq(i_stream.valid), k_addr.eq(i_row.addr)]
            for lane in range(lanes):
                current = i_row.current[lane]
                if self._current_shifter:   # arithmetic: a signed value shifts in its sign
                    current = current >> params.current_shift
                m.d.sync += k_current[lane].eq(current)
            for lane in range(lanes):
                m.d.sync += k_leaked[lane].eq(self._leak(m, i_row.membrane[lane], factor))

        # l_: integrate at full width.
        with m.If(l_free):
            m.d.sync += [l_valid.eq(k_valid), l_addr.eq(k_addr)]
            for lane in range(lanes):
                m.d.sync += l_sum[lane].eq(k_leaked[lane] + k_current[lane])

        # Saturation bounds of the network's width, shared by all lanes.
        high = Signal(signed(bits))
        m.d.comb += high.eq((Const(1 << (bits - 1), unsigned(bits)) >> params.membrane_narrow)
                            - 1)
        low = ~high  # -high - 1
        threshold = params.threshold

        # Output stage: saturate, fire, reset.
        fired = Signal(lanes)
        written = Signal(data.ArrayLayout(signed(bits), lanes))
        for lane in range(lanes):
            total = l_sum[lane]
            saturated = Mux(total > high, high, Mux(total < low, low, total))
            # sat(total) >= threshold exactly when total >= threshold, because
            # 1 <= threshold <= high (asserted): the compare need not wait for the clamp.
            m.d.comb += fired[lane].eq(params.fire & (total >= threshold))
            m.d.comb += written[lane].eq(
                Mux(fired[lane], Mux(params.reset_to_zero, 0, saturated - threshold),
                    saturated))
        with m.If(o_free):
            m.d.sync += [o_stream.valid.eq(l_valid), o_row.addr.eq(l_addr),
                         o_row.membrane.eq(written), o_row.spikes.eq(fired)]

        if platform is None:
            # Simulation and plain Verilog export only: the assertions become SystemVerilog
            # ``assert`` statements, which a vendor synthesis flow need not accept.
            self._assertions(m, i_stream.valid, l_valid, high)
        return m

    def _assertions(self, m, i_valid, l_valid, high):
        """Simulation checks of the parameter ranges, while rows use them."""
        params, bits = self.params, self._membrane_bits
        mul = params.leak_kind == LeakKind.MUL
        shift = params.leak_kind == LeakKind.SHIFT
        width = bits - params.membrane_narrow  # the network's membrane width
        m.d.sync += [
            Assert(~i_valid | (params.membrane_narrow <= bits - 2),
                   "membrane_narrow leaves fewer than 2 membrane bits"),
            Assert(~i_valid | (params.leak_kind.as_value() != 3), "leak_kind is not a LeakKind"),
            Assert(~i_valid | ~shift | ((params.leak_shift >= 1) & (params.leak_shift < width)),
                   "leak_shift outside 1 .. membrane width - 1"),
            Assert(~l_valid | ~params.fire
                   | ((params.threshold >= 1) & (params.threshold <= high)),
                   "threshold outside 1 .. 2**(membrane width - 1) - 1"),
        ]
        if self._leak_multiplier:
            m.d.sync += Assert(
                ~i_valid | ~mul | (
                    (params.leak_frac_bits >= 1) & (params.leak_frac_bits <= MAX_LEAK_FRAC_BITS)
                    & (params.leak_factor <= (Const(1, 1) << params.leak_frac_bits))),
                f"leak_factor or leak_frac_bits outside 0 .. 2**q, 1 .. "
                f"{MAX_LEAK_FRAC_BITS}")
        else:
            m.d.sync += Assert(~i_valid | ~mul,
                               "multiplicative leak selected, but the core has no multiplier")
        if not self._current_shifter:
            m.d.sync += Assert(~i_valid | (params.current_shift == 0),
                               "current shift selected, but the core has no shifter")
