"""Max-pool pass: one timestep of a spike bitmap, pooled into the next layer's bitmap.

Max-pool on spikes is an OR over each window (``spikeforge.golden.synapse.maxpool2d``:
kernel ``K``, stride ``s``, no padding; windows overlap when ``s < K``). The pass consumes
the input timestep's events (the ``event_layout`` stream of an :class:`EventScanner`, so the
top level reuses its scanner) and sets, for every event ``(c, y, x)``, bit ``c mod lanes`` of
the pooled word of every output position ``(oy, ox)`` whose window contains ``(y, x)``.
Pooled words follow ``docs/accelerator.md`` section 2: word ``word_base + (oy * out_w + ox)
* groups + c div lanes``, with ``word_base = t * out_h * out_w * groups`` for timestep ``t``.

The write side is a read-modify-write on the output bitmap, whose timestep words are
cleared first. Phases:

* clear: ``out_h * out_w * groups`` cycles, one zero word written per cycle;
* run: the events are accepted and expanded; every window costs one read of the pooled word
  and, the next cycle, one write of it with the bit set. A read that misses the write of the
  cycle before (same word, one cycle apart, the read port need not be transparent) takes
  that word from the ``h_`` register instead. The ``end`` marker closes the pass.

Along one axis the windows that contain ``y`` are those of ``o = y div s`` (clamped to
``out - 1``, then ``k = y - s * o``) and every next ``o - 1``, ``k + s`` while ``k < K``
and ``o >= 0``; an input row past the last window (``y >= s * (out - 1) + K``) has none. Run
stages (prefixes of the signals that belong to them):

* ``c_`` constants of the pass (products of parameters), registered on ``start``;
* ``p_`` the event's first window per axis (a short division by the stride), its group and
  bit mask;
* ``q_`` the first window's word address (two multiplies);
* ``e_`` emitter: one window read per cycle, ``max(1, windows)`` cycles per event and one
  cycle for the marker;
* ``m_`` merge: OR the bit into the read word and write it back; ``done`` when the marker
  arrives here.

Cycle cost (the cycle model relies on it). Count the cycle that samples ``start`` as cycle
``0``; the run starts in cycle ``R = 1 + words``, ``words = out_h * out_w * groups``. Number
the events ``i = 0 .. n - 1`` and the marker ``n``; item ``i`` is offered from cycle
``o_i`` and needs ``d_i = max(1, windows(i))`` emitter cycles (``d_n = 1``). The pass
transfers it in cycle ``t_i = max(o_i, R, a_{i-1})``, moves it on to ``q_`` at the end of
cycle ``a_i = max(t_i + 1, b_{i-1})``, to ``e_`` at the end of cycle ``b_i = max(a_i + 1,
b_{i-1} + d_{i-1})``, and ``done`` is high in cycle ``b_n + 2``: a pass takes ``b_n + 3``
cycles (``a_{-1} = b_{-1} = d_{-1} = 0``). With every item offered at once this is
``words + 6 + sum over events of max(1, windows)``. Driven by an :class:`EventScanner`
started in the same cycle, ``o_i = t_{i-1} + 1 + z_i`` (``o_0 = 1 + z_0``), where ``z_i`` is
the number of spike-free words the scanner passes before item ``i``:
:func:`scan_pool_cycles` evaluates exactly that.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .interfaces import WordReadSignature, WordWriteSignature, event_layout
from .tap_generator import STRIDE_BITS

__all__ = ["MaxPoolPass", "pool_params_layout", "windows", "pass_cycles", "pass_timing",
           "scan_pool_cycles", "scan_pool_timing"]


def pool_params_layout(*, coord_bits, word_addr_bits, group_bits):
    """One pass: pool geometry, the timestep's first output word and the groups per word row.

    Sizes are ``coord_bits + 1`` wide (as in the tap generator's geometry); ``stride_*`` is
    ``1 .. MAX_STRIDE``.
    """
    size = unsigned(coord_bits + 1)
    return data.StructLayout({
        "kernel_h": size, "kernel_w": size,
        "stride_h": unsigned(STRIDE_BITS), "stride_w": unsigned(STRIDE_BITS),
        "out_h": size, "out_w": size,
        "groups": unsigned(group_bits),
        "word_base": unsigned(word_addr_bits),
    })


def windows(y, x, params):
    """Pooling windows that contain input ``(y, x)`` (a dict of :func:`pool_params_layout`)."""
    def axis(coord, kernel, stride, out):
        return sum(1 for o in range(out) if o * stride <= coord < o * stride + kernel)
    p = params
    return (axis(y, p["kernel_h"], p["stride_h"], p["out_h"])
            * axis(x, p["kernel_w"], p["stride_w"], p["out_w"]))


def pass_cycles(words, offers, costs):
    """Exact cycles of a pass: ``offers[i]``/``costs[i]`` = ``o_i``/``d_i`` of the module
    docstring, the marker last. ``offers`` may be a callable ``(i, t_prev) -> o_i``."""
    return pass_timing(words, offers, costs)[0]


def pass_timing(words, offers, costs):
    """``(cycles, t_n)``: :func:`pass_cycles` and the cycle the marker is transferred in."""
    run = 1 + words
    a = b = d = 0  # of the item before: q_ move, e_ move, emitter cycles
    t = None
    for i, cost in enumerate(costs):
        offer = offers(i, t) if callable(offers) else offers[i]
        t = max(offer, run, a)
        a_next = max(t + 1, b)
        b = max(a_next + 1, b + d)
        a, d = a_next, cost
    return b + 3, t


def scan_pool_cycles(words, scan_words, params):
    """Exact cycles of a pass fed by an ``EventScanner`` started in the same cycle.

    ``scan_words`` lists the scanned input words in order, each as the list of its events'
    ``(y, x)``; ``words`` is the pass's cleared word count.
    """
    return scan_pool_timing(words, scan_words, params)[0]


def scan_pool_timing(words, scan_words, params):
    """``(cycles, t_n)`` of :func:`scan_pool_cycles`: ``t_n``, the cycle the scanner's marker
    is transferred in, is also the scanner's busy cycles (busy from the cycle after
    ``start``)."""
    costs, gaps, empty = [], [], 0
    for events in scan_words:
        if not events:
            empty += 1
        for y, x in events:
            costs.append(max(1, windows(y, x, params)))
            gaps.append(empty)
            empty = 0
    costs.append(1)
    gaps.append(empty)
    return pass_timing(words, lambda i, t: 1 + gaps[i] + (0 if t is None else t), costs)


def _divmod(m, name, dividend, divisor):
    """``divmod(dividend, divisor)`` for a divisor of ``STRIDE_BITS`` bits: restoring division,
    one compare-and-subtract of ``STRIDE_BITS + 1`` bits per quotient bit."""
    quotient = Signal(len(dividend), name=f"{name}_q")
    remainder = 0
    for bit in reversed(range(len(dividend))):
        partial = Signal(STRIDE_BITS + 1, name=f"{name}_partial{bit}")
        left = Signal(STRIDE_BITS, name=f"{name}_left{bit}")
        m.d.comb += [
            partial.eq((remainder << 1) | dividend[bit]),
            quotient[bit].eq(partial >= divisor),
            left.eq(Mux(partial >= divisor, partial - divisor, partial)),
        ]
        remainder = left
    return quotient, remainder


class MaxPoolPass(wiring.Component):
    """Pool one timestep's events into the output bitmap (read-modify-write, cleared first).

    ``i_stream`` follows the ``amaranth.lib.stream`` rules; it is ready only in the run phase
    and when the pass can take an event, and no more after the ``end`` marker until the next
    ``start``. Events may arrive in any order. ``read`` and ``write`` are two ports of the
    output bitmap memory (the one the next layer's scanner reads).

    Parameters
    ----------
    lanes : int
        Bits per bitmap word.
    word_addr_bits : int
        Address width of the output bitmap.
    channel_bits, coord_bits : int
        Widths of an event's channel and coordinates (as for the event scanner).
    group_bits : int
        Width of the group count.

    Members
    -------
    params : In(pool_params_layout(...))
        Sampled on ``start``; ``out_h``, ``out_w``, ``groups``, ``stride_*`` at least 1.
    start : In(1)
        Begins a pass; ignored while ``busy``.
    busy : Out(1)
        High from the cycle after ``start`` to the ``done`` cycle inclusive.
    done : Out(1)
        One-cycle strobe after the pass's last write.
    i_stream : In(stream.Signature(event_layout(channel_bits, coord_bits)))
        The input timestep's events, then ``end``.
    read : Out(WordReadSignature(addr_bits=word_addr_bits, data_shape=unsigned(lanes)))
        Read port of the output bitmap.
    write : Out(WordWriteSignature(addr_bits=word_addr_bits, data_shape=unsigned(lanes)))
        Write port of the output bitmap.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    ValueError
        If ``channel_bits`` cannot number ``lanes`` lanes.
    """

    def __init__(self, *, lanes, word_addr_bits, channel_bits, coord_bits, group_bits):
        for value, what in ((lanes, "Lane count"), (word_addr_bits, "Word address width"),
                            (channel_bits, "Channel width"), (coord_bits, "Coordinate width"),
                            (group_bits, "Group count width")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"{what} must be a positive integer, not {value!r}")
        if (1 << channel_bits) < lanes:
            raise ValueError(f"Channel width {channel_bits} cannot number {lanes} lanes")
        self._lanes = lanes
        self._coord_bits = coord_bits
        self._params_layout = pool_params_layout(coord_bits=coord_bits,
                                                 word_addr_bits=word_addr_bits,
                                                 group_bits=group_bits)
        word = unsigned(lanes)
        super().__init__({
            "params": In(self._params_layout),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "i_stream": In(stream.Signature(event_layout(channel_bits=channel_bits,
                                                         coord_bits=coord_bits))),
            "read": Out(WordReadSignature(addr_bits=word_addr_bits, data_shape=word)),
            "write": Out(WordWriteSignature(addr_bits=word_addr_bits, data_shape=word)),
        })

    @property
    def lanes(self):
        return self._lanes

    def _group_lane(self, channel):
        """``divmod(channel, lanes)``: a slice for a power-of-two lane count."""
        if self._lanes & (self._lanes - 1) == 0:
            shift = exact_log2(self._lanes)
            return channel[shift:], channel[:shift]
        return channel // self._lanes, channel % self._lanes

    def _first_window(self, m, name, coord, stride, out, last_start):
        """First window ``(o0, k0)`` containing ``coord`` along one axis."""
        size = self._coord_bits + 1
        quotient, remainder = _divmod(m, name, coord, stride)
        clamp = Signal(name=f"{name}_clamp")
        k0 = Signal(size + 1, name=f"{name}_k0")
        o0 = Signal(size, name=f"{name}_o0")
        m.d.comb += [
            clamp.eq(quotient >= out),
            k0.eq(Mux(clamp, coord - last_start, remainder)),
            o0.eq(Mux(clamp, out - 1, quotient)),
        ]
        return o0, k0

    def elaborate(self, platform):
        m = Module()
        size = self._coord_bits + 1
        lanes = self._lanes
        prm = Signal(self._params_layout)
        word_addr = Signal.like(self.write.addr)

        # c_: registered on start, from the parameters being sampled.
        c_last_h, c_last_w = Signal(size + STRIDE_BITS), Signal(size + STRIDE_BITS)
        c_row_words = Signal(len(word_addr))
        clear_addr = Signal.like(word_addr)
        clear_left = Signal(2 * size + len(prm.groups))
        got_end = Signal()

        event = self.i_stream.payload
        p_valid, p_end, p_has = Signal(), Signal(), Signal()
        p_oy0, p_ox0 = Signal(size), Signal(size)
        p_ky0, p_kx0 = Signal(size + 1), Signal(size + 1)
        p_group = Signal(len(event.channel))
        p_mask = Signal(lanes)
        q_valid, q_end, q_has = Signal(), Signal(), Signal()
        q_oy0, q_ox0 = Signal(size), Signal(size)
        q_ky0, q_kx0 = Signal(size + 1), Signal(size + 1)
        q_word, q_mask = Signal.like(word_addr), Signal(lanes)
        e_valid, e_end, e_has = Signal(), Signal(), Signal()
        e_oy, e_ox, e_ox0 = Signal(size), Signal(size), Signal(size)
        e_ky, e_kx, e_kx0 = Signal(size + 1), Signal(size + 1), Signal(size + 1)
        e_word, e_row_word, e_mask = Signal.like(word_addr), Signal.like(word_addr), Signal(lanes)
        m_valid, m_end = Signal(), Signal()
        m_word, m_mask = Signal.like(word_addr), Signal(lanes)
        h_valid, h_word, h_data = Signal(), Signal.like(word_addr), Signal(lanes)

        last_x = (e_ox == 0) | (e_kx + prm.stride_w >= prm.kernel_w)
        last_y = (e_oy == 0) | (e_ky + prm.stride_h >= prm.kernel_h)
        e_load = ~e_valid | e_end | ~e_has | (last_x & last_y)
        q_load = ~q_valid | e_load
        p_load = ~p_valid | q_load
        running = Signal()

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    p = self.params
                    m.d.sync += [
                        prm.eq(p), got_end.eq(0),
                        c_last_h.eq((p.out_h - 1) * p.stride_h),
                        c_last_w.eq((p.out_w - 1) * p.stride_w),
                        c_row_words.eq(p.out_w * p.groups),
                        clear_addr.eq(p.word_base),
                        clear_left.eq(p.out_h * p.out_w * p.groups),
                    ]
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                m.d.comb += [self.busy.eq(1), self.write.en.eq(1),
                             self.write.addr.eq(clear_addr), self.write.data.eq(0)]
                m.d.sync += [clear_addr.eq(clear_addr + 1), clear_left.eq(clear_left - 1)]
                with m.If(clear_left == 1):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), running.eq(1)]
                with m.If(m_end):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

        # p_: accept an event; its first window per axis, group and bit.
        accept = Signal()
        m.d.comb += [self.i_stream.ready.eq(running & ~got_end & p_load),
                     accept.eq(self.i_stream.valid & self.i_stream.ready)]
        with m.If(accept & event.end):
            m.d.sync += got_end.eq(1)
        oy0, ky0 = self._first_window(m, "p_y", event.y, prm.stride_h, prm.out_h, c_last_h)
        ox0, kx0 = self._first_window(m, "p_x", event.x, prm.stride_w, prm.out_w, c_last_w)
        group, lane = self._group_lane(event.channel)
        with m.If(p_load):
            m.d.sync += [
                p_valid.eq(accept), p_end.eq(event.end),
                p_has.eq(~event.end & (ky0 < prm.kernel_h) & (kx0 < prm.kernel_w)),
                p_oy0.eq(oy0), p_ox0.eq(ox0), p_ky0.eq(ky0), p_kx0.eq(kx0),
                p_group.eq(group),
            ]
            m.d.sync += [p_mask[i].eq(lane == i) for i in range(lanes)]

        # q_: the first window's word address.
        with m.If(q_load):
            m.d.sync += [
                q_valid.eq(p_valid), q_end.eq(p_end), q_has.eq(p_has),
                q_oy0.eq(p_oy0), q_ox0.eq(p_ox0), q_ky0.eq(p_ky0), q_kx0.eq(p_kx0),
                q_word.eq(prm.word_base + p_oy0 * c_row_words + p_ox0 * prm.groups + p_group),
                q_mask.eq(p_mask),
            ]

        # e_: walk the windows (ox, then oy, descending), one read per cycle.
        m.d.comb += [self.read.addr.eq(e_word), self.read.en.eq(e_valid & e_has)]
        m.d.sync += [m_valid.eq(e_valid & e_has), m_end.eq(e_valid & e_end),
                     m_word.eq(e_word), m_mask.eq(e_mask)]
        with m.If(e_load):
            m.d.sync += [
                e_valid.eq(q_valid), e_end.eq(q_end), e_has.eq(q_has),
                e_oy.eq(q_oy0), e_ox.eq(q_ox0), e_ox0.eq(q_ox0),
                e_ky.eq(q_ky0), e_kx.eq(q_kx0), e_kx0.eq(q_kx0),
                e_word.eq(q_word), e_row_word.eq(q_word), e_mask.eq(q_mask),
            ]
        with m.Elif(~last_x):
            m.d.sync += [e_kx.eq(e_kx + prm.stride_w), e_ox.eq(e_ox - 1),
                         e_word.eq(e_word - prm.groups)]
        with m.Else():
            next_row = e_row_word - c_row_words
            m.d.sync += [e_ky.eq(e_ky + prm.stride_h), e_oy.eq(e_oy - 1),
                         e_kx.eq(e_kx0), e_ox.eq(e_ox0),
                         e_row_word.eq(next_row), e_word.eq(next_row)]

        # m_: OR the bit in; the word written one cycle ago is newer than the read data.
        with m.If(m_valid):
            merged = Mux(h_valid & (h_word == m_word), h_data, self.read.data) | m_mask
            m.d.comb += [self.write.en.eq(1), self.write.addr.eq(m_word),
                         self.write.data.eq(merged)]
        m.d.sync += [h_valid.eq(self.write.en), h_word.eq(self.write.addr),
                     h_data.eq(self.write.data)]
        return m
