"""Event scanner: turns one timestep of a spike bitmap into a stream of spike events.

The bitmap layout is ``docs/accelerator.md`` section 2: one word of ``lanes`` bits per
(position, channel group), positions in row-major order, groups innermost. For a scan the
sequencer gives the first word of the timestep, the number of positions, the number of
groups and the map width; the scanner walks the words in order and emits, for every set
bit, the event ``(channel, y, x)`` with ``channel = group * lanes + lane``, lowest lane
first. After the last word it emits one ``end`` marker.

**Position-packed bitmaps** (built with ``max_pack > 0``). A layer with at most
``lanes / P`` channels (one group), ``P = 2**pack``, may store ``P`` positions per word:
word ``w`` of the timestep holds positions ``P*w .. P*w + P - 1``, and channel ``c`` of
position ``P*w + s`` is bit ``s * (lanes / P) + c``. The scan's ``pack`` field gives
``log2 P``; the scanner walks the word's ``P`` sub-words in order and emits exactly the
events of the unpacked scan of the same spikes, lowest channel first.

Cycle cost (the cycle model relies on it): with ``o_stream.ready`` always high, a scan takes
``1 + sum over positions of max(1, popcount(position's bits)) + 1`` cycles from the
``start`` strobe to the transfer of the ``end`` marker: one cycle to issue the first read,
one cycle per event (a position without spikes still costs one cycle), one for the marker.
A position's bits are its word (``groups`` words per position when unpacked: read each
"position" above as one word) or, packed, its sub-word; the next word is read, prefetched,
only after the last sub-word of the previous one, so no sub-word costs a bubble.
Back-pressure adds exactly the cycles in which an offered event or the marker waits.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import WordReadSignature, event_layout
from .checks import check_int

__all__ = ["EventScanner", "scan_params_layout"]


def scan_params_layout(*, word_addr_bits, position_bits, group_bits, coord_bits,
                       pack_bits=0):
    """What one scan needs: first word, positions, groups per position, map width and, with
    ``pack_bits > 0``, ``pack`` (log2 of the positions per word).

    ``width`` is one bit wider than a coordinate: a map may be ``2**coord_bits`` wide.
    ``pack`` is the last field, so a layout without it assigns to one with it as ``pack = 0``
    (a plain ``.eq`` zero-extends), and callers that never pack need no change.
    """
    check_int(pack_bits, "Pack width", low=0, high=2)
    fields = {
        "first_word": unsigned(word_addr_bits),
        "positions": unsigned(position_bits),
        "groups": unsigned(group_bits),
        "width": unsigned(coord_bits + 1),
    }
    if pack_bits:
        fields["pack"] = unsigned(pack_bits)
    return data.StructLayout(fields)


def _any_and_several(bits):
    """``(any bit set, two or more set)`` of ``bits`` as a balanced tree of small gates: the
    "last event of the word" test without the ``bits - 1`` carry chain on its path."""
    parts = [(bits[i], 0) for i in range(len(bits))]
    while len(parts) > 1:
        merged = []
        for i in range(0, len(parts) - 1, 2):
            (any_a, many_a), (any_b, many_b) = parts[i], parts[i + 1]
            merged.append((any_a | any_b, many_a | many_b | (any_a & any_b)))
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    return parts[0]


class EventScanner(wiring.Component):
    """Scan one timestep of a spike bitmap into events.

    Parameters
    ----------
    lanes : int
        Bits per bitmap word (the number of PEs).
    word_addr_bits : int
        Address width of the bitmap memory.
    channel_bits, coord_bits : int
        Widths of the event's channel and of its y/x coordinates.
    position_bits, group_bits : int
        Widths of the scan's position and group counts.
    max_pack : int
        Largest ``pack`` (log2 of positions per word) the scanner reads: 0 (default: no
        packed mode, no ``pack`` field, not one gate more), 1 or 2. ``params`` then has a
        ``pack`` field of ``max_pack.bit_length()`` bits.

    Members
    -------
    params : In(scan_params_layout(...))
        Sampled on ``start``; may change during a scan without effect.
    start : In(1)
        Strobe that begins a scan; ignored while ``busy``. ``positions`` and ``groups`` must
        be at least 1 and ``width`` must divide the position count into rows. With
        ``pack > 0`` (at most ``max_pack``), ``groups`` must be 1 and ``positions`` a
        multiple of ``2**pack``; the timestep is then ``positions / 2**pack`` words.
    busy : Out(1)
        High from the cycle after ``start`` until the ``end`` marker has been transferred.
    mem : Out(WordReadSignature(addr_bits=word_addr_bits, data_shape=unsigned(lanes)))
        Read port of the bitmap memory.
    o_stream : Out(stream.Signature(event_layout(...)))
        Events in word order, then one payload with ``end = 1``.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer, or ``max_pack`` not in 0..2.
    ValueError
        If the channel width cannot number the lanes, or ``lanes`` is not a multiple of
        ``2**max_pack``.
    """

    def __init__(self, *, lanes, word_addr_bits, channel_bits, coord_bits, position_bits,
                 group_bits, max_pack=0):
        for value, what in ((lanes, "Lane count"), (word_addr_bits, "Word address width"),
                            (channel_bits, "Channel width"), (coord_bits, "Coordinate width"),
                            (position_bits, "Position count width"),
                            (group_bits, "Group count width")):
            check_int(value, what)
        check_int(max_pack, "Maximum pack", low=0, high=2)
        if (1 << channel_bits) < lanes:
            raise ValueError(f"Channel width {channel_bits} cannot number {lanes} lanes")
        if lanes % (1 << max_pack):
            raise ValueError(f"Lane count {lanes} cannot hold {1 << max_pack} positions per "
                             f"word (maximum pack {max_pack})")
        self._lanes = lanes
        self._max_pack = max_pack
        self._params_layout = scan_params_layout(
            word_addr_bits=word_addr_bits, position_bits=position_bits, group_bits=group_bits,
            coord_bits=coord_bits, pack_bits=max_pack.bit_length())
        super().__init__({
            "params": In(self._params_layout),
            "start": In(1),
            "busy": Out(1),
            "mem": Out(WordReadSignature(addr_bits=word_addr_bits, data_shape=unsigned(lanes))),
            "o_stream": Out(stream.Signature(event_layout(channel_bits=channel_bits,
                                                          coord_bits=coord_bits))),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def max_pack(self):
        return self._max_pack

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        packed = self._max_pack > 0  # max_pack == 0 builds exactly the unpacked scanner
        params = Signal(self._params_layout)
        event = self.o_stream.payload

        next_addr = Signal.like(self.mem.addr)
        # Words (unpacked) or sub-words, i.e. positions (packed), still to scan.
        words_left = Signal(len(params.positions) + len(params.groups))
        group = Signal.like(params.groups)
        channel_base = Signal.like(event.channel)
        x = Signal.like(event.x)
        y = Signal.like(event.y)
        pending = Signal(lanes)  # the word's bits not yet emitted (all its sub-words)
        fresh = Signal()  # the word just read is on mem.data this cycle, not yet in pending

        bits = Signal(lanes)
        m.d.comb += bits.eq(Mux(fresh, self.mem.data, pending))
        # The lowest set bit of the whole word is the current sub-word's lowest: the earlier
        # sub-words are already emitted, so the encoder and ``rest`` need no slot mask.
        lowest = Signal(range(lanes))
        for lane in reversed(range(lanes)):  # the last assignment wins: the lowest set lane
            with m.If(bits[lane]):
                m.d.comb += lowest.eq(lane)
        rest = Signal(lanes)
        m.d.comb += rest.eq(bits & (bits - 1))  # bits with the lowest set bit cleared
        if packed:
            # The current sub-word's bits of the word, and lane -> channel within a sub-word.
            # Registers, so the slot costs one AND in front of the ``some``/``several`` tree.
            slot_mask = Signal(lanes)
            lane_mask = Signal(range(lanes))
            current = Signal(lanes)
            m.d.comb += current.eq(bits & slot_mask)
        else:
            current = bits
        # current != 0 and current has two or more bits set, apart from rest (only registers
        # wait for the carry chain).
        some, several = Signal(), Signal()
        m.d.comb += Cat(some, several).eq(Cat(*_any_and_several(current)))

        def first_slot(pack_of):
            """Load slot_mask and lane_mask for sub-word 0 of a word packed ``2**pack_of``."""
            with m.Switch(pack_of):
                for pack in range(self._max_pack + 1):
                    with (m.Case(pack) if pack < self._max_pack else m.Default()):
                        sub = lanes >> pack
                        m.d.sync += [slot_mask.eq((1 << sub) - 1), lane_mask.eq(sub - 1)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [
                        params.eq(self.params),
                        words_left.eq(self.params.positions * self.params.groups),
                        group.eq(0), channel_base.eq(0), x.eq(0), y.eq(0),
                        next_addr.eq(self.params.first_word + 1),
                        fresh.eq(1),
                    ]
                    if packed:
                        first_slot(self.params.pack)
                    m.d.comb += [self.mem.addr.eq(self.params.first_word), self.mem.en.eq(1)]
                    m.next = "SCAN"
            with m.State("SCAN"):
                # The payload is assigned whatever the word holds (``valid`` alone qualifies
                # it): y and x then come straight from registers, and the tap generator's
                # first stage does not wait for the bitmap RAM and the ``bits == 0`` test.
                channel = channel_base + (lowest & lane_mask if packed else lowest)
                m.d.comb += [self.busy.eq(1), event.channel.eq(channel),
                             event.y.eq(y), event.x.eq(x), event.end.eq(0)]
                # sub_done: the current sub-word (one position) ends this cycle; word_done:
                # so does the word. Unpacked, a word is its own only sub-word.
                word_done = Signal()
                sub_done = Signal() if packed else word_done
                with m.If(~some):
                    m.d.comb += sub_done.eq(1)
                    if packed:  # a fresh word's later sub-words must survive the empty one
                        m.d.sync += pending.eq(bits)
                with m.Else():
                    m.d.comb += self.o_stream.valid.eq(1)
                    with m.If(self.o_stream.ready):
                        m.d.comb += sub_done.eq(~several)
                        m.d.sync += pending.eq(rest)
                    with m.Else():
                        m.d.sync += pending.eq(bits)
                if packed:  # the last slot is the one holding the word's top lane
                    m.d.comb += word_done.eq(sub_done & slot_mask[lanes - 1])
                m.d.sync += fresh.eq(0)
                with m.If(sub_done):
                    m.d.sync += words_left.eq(words_left - 1)
                    with m.If(words_left == 1):
                        m.next = "END"
                    with m.Else():
                        if packed:
                            with m.If(word_done):
                                # Prefetch the next word: it is on mem.data in the next cycle.
                                m.d.comb += [self.mem.addr.eq(next_addr), self.mem.en.eq(1)]
                                m.d.sync += [next_addr.eq(next_addr + 1), fresh.eq(1)]
                                first_slot(params.pack)
                            with m.Else():
                                # Next sub-word of the same word, already in pending: no read.
                                # (pack 0 never gets here: its one slot holds the top lane.)
                                with m.Switch(params.pack):
                                    for pack in range(1, self._max_pack + 1):
                                        with (m.Case(pack) if pack < self._max_pack
                                              else m.Default()):
                                            m.d.sync += slot_mask.eq(
                                                slot_mask << (lanes >> pack))
                        else:
                            # Prefetch the next word: it is on mem.data in the next cycle.
                            m.d.comb += [self.mem.addr.eq(next_addr), self.mem.en.eq(1)]
                            m.d.sync += [next_addr.eq(next_addr + 1), fresh.eq(1)]
                        # Packed scans have one group, so every sub-word steps the position.
                        with m.If(group == params.groups - 1):
                            m.d.sync += [group.eq(0), channel_base.eq(0)]
                            with m.If(x == params.width - 1):
                                m.d.sync += [x.eq(0), y.eq(y + 1)]
                            with m.Else():
                                m.d.sync += x.eq(x + 1)
                        with m.Else():
                            m.d.sync += [group.eq(group + 1),
                                         channel_base.eq(channel_base + lanes)]
            with m.State("END"):
                m.d.comb += [self.busy.eq(1), self.o_stream.valid.eq(1), event.end.eq(1)]
                with m.If(self.o_stream.ready):
                    m.next = "IDLE"
        return m
