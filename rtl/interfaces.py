"""Payload layouts and port signatures shared by the accelerator's blocks.

Every block of ``rtl/`` talks to its neighbours through the streams and ports defined here,
so that the blocks can be built and tested one at a time. ``docs/accelerator.md`` explains
the dataflow; the arithmetic is ``docs/neuron.md``.

Conventions
-----------
* ``lanes`` is the number of PEs. Lane ``i`` of a row always belongs to output channel
  ``group * lanes + i`` of the layer being computed (channel groups tile wide layers).
* A *position* is the flat output address ``y * out_w + x`` (``0`` for a linear layer); the
  partial-sum banks and the membrane memory hold one row of ``lanes`` values per position.
* Streams obey the four rules of ``amaranth.lib.stream``: a transfer happens when
  ``valid & ready``; once ``valid`` is asserted, ``valid`` and ``payload`` hold until the
  transfer; a producer never waits for ``ready`` before asserting ``valid``.
* Memories are ``amaranth.lib.memory.Memory`` with synchronous read ports: read data is valid
  the cycle after the address is presented with ``r_en`` high (and stays until the next
  enabled read).
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from ..golden.network import CURRENT_SHIFTS

__all__ = [
    "LeakKind",
    "neuron_params_layout",
    "row_layout",
    "spike_row_layout",
    "event_layout",
    "tap_layout",
    "aggregation_input_layout",
    "aggregation_output_layout",
    "spike_output_layout",
    "MAX_PACK",
    "RowPortSignature",
    "WordReadSignature",
    "WordWriteSignature",
]


class LeakKind(enum.Enum, shape=unsigned(2)):
    """Leak of a layer's neurons (``docs/neuron.md`` section 3)."""

    #: ``leak(V) = V`` (integrate and fire).
    NONE = 0
    #: ``leak(V) = V - (V >>> shift)``.
    SHIFT = 1
    #: ``leak(V) = (V * factor) >>> frac_bits``; needs a multiplier per lane.
    MUL = 2


def neuron_params_layout(membrane_bits):
    """Per-layer neuron parameters, constant while a layer runs (from its descriptor).

    ``threshold`` is ``1 .. 2**(B-1) - 1``; ``fire = 0`` marks the non-spiking output layer
    (integrate only: no threshold test, no reset). ``membrane_narrow`` lets one design run a
    network whose membranes are narrower than the hardware's ``membrane_bits``: the network's
    width is ``membrane_bits - membrane_narrow`` (saturation happens there, and ``B`` above is
    that width); ``0``, the field's default, is the full width. ``current_shift`` is the
    neuron's ``k`` (the membrane integrates ``I >>> k``; 0 unless the core has a shifter).
    """
    return data.StructLayout({
        "threshold": unsigned(membrane_bits - 1),
        "leak_kind": LeakKind,
        "leak_shift": unsigned(5),
        "leak_factor": unsigned(17),
        "leak_frac_bits": unsigned(5),
        "reset_to_zero": unsigned(1),
        "fire": unsigned(1),
        "membrane_narrow": unsigned(5),
        "current_shift": unsigned(CURRENT_SHIFTS[1].bit_length()),
    })


def row_layout(bits, lanes):
    """One row of ``lanes`` signed values (partial sums, membranes or weights)."""
    return data.ArrayLayout(signed(bits), lanes)


def spike_row_layout(lanes):
    """One row of spikes: bit ``i`` is lane ``i``."""
    return unsigned(lanes)


def event_layout(*, channel_bits, coord_bits):
    """An input spike event of one timestep, or the end-of-timestep marker.

    ``end = 1`` carries no event: it says the timestep's events are complete (a timestep may
    have no events at all, so the end cannot ride on the last event).
    """
    return data.StructLayout({
        "channel": unsigned(channel_bits),
        "y": unsigned(coord_bits),
        "x": unsigned(coord_bits),
        "end": unsigned(1),
    })


#: Largest ``log2`` of the output positions one partial-sum row holds (position packing,
#: ``docs/accelerator.md`` section 2): up to 4 positions, each in its own quarter of the lanes.
MAX_PACK = 2


def tap_layout(*, addr_bits, weight_addr_bits, max_pack=0):
    """One kernel tap of one event: add weight row ``weight_addr`` at position ``out_addr``.

    ``end = 1`` carries no tap and marks the end of the timestep (forwarded from the events).
    With ``max_pack > 0`` (position packing) an item is a *chunk*: ``count`` (1 .. 2**pack)
    taps of one kernel row landing on the consecutive positions ``out_addr .. out_addr +
    count - 1``, whose weights are the slots of row ``weight_addr`` rotated by ``rotate``
    slots (``rtl/pe_array.py``).
    """
    fields = {
        "out_addr": unsigned(addr_bits),
        "weight_addr": unsigned(weight_addr_bits),
        "end": unsigned(1),
    }
    if max_pack:
        fields |= {"count": unsigned(max_pack + 1), "rotate": unsigned(max_pack)}
    return data.StructLayout(fields)


#: Widths a partial sum (the signed current of one lane) may have, inclusive: the
#: aggregation core and the config both check against this range.
PSUM_BITS = (2, 64)


def aggregation_input_layout(*, addr_bits, lanes, psum_bits, membrane_bits):
    """What the aggregation core reads for one position: current and previous membrane."""
    return data.StructLayout({
        "addr": unsigned(addr_bits),
        "current": row_layout(psum_bits, lanes),
        "membrane": row_layout(membrane_bits, lanes),
    })


def aggregation_output_layout(*, addr_bits, lanes, membrane_bits):
    """What the aggregation core writes back for one position: membrane and spikes."""
    return data.StructLayout({
        "addr": unsigned(addr_bits),
        "membrane": row_layout(membrane_bits, lanes),
        "spikes": spike_row_layout(lanes),
    })


def spike_output_layout(*, addr_bits, lanes):
    """A row of output spikes at one position (to the spike memory of the next layer)."""
    return data.StructLayout({
        "addr": unsigned(addr_bits),
        "spikes": spike_row_layout(lanes),
    })


class RowPortSignature(wiring.Signature):
    """A client's access to a row memory: one synchronous read and one write per cycle.

    Seen from the client (the PE array, the aggregation sweep): it drives the addresses,
    enables and write data; ``r_data`` is valid the cycle after ``r_en``. The ping-pong
    controller connects two such clients to the two partial-sum banks.

    With ``slots > 1`` the row's lanes are ``slots`` equal slices, each a memory of its own:
    the addresses and enables are arrays of one per slice (slice ``j`` is lanes ``j *
    lanes / slots ..``), the data is still the whole row (the position-packed PE array).

    Members
    -------
    r_addr : Out(addr_bits), or Out(ArrayLayout(addr_bits, slots))
    r_en : Out(1), or Out(slots)
    r_data : In(row_layout(bits, lanes))
    w_addr : Out(addr_bits), or Out(ArrayLayout(addr_bits, slots))
    w_en : Out(1), or Out(slots)
    w_data : Out(row_layout(bits, lanes))
    """

    def __init__(self, *, addr_bits, bits, lanes, slots=1):
        row = row_layout(bits, lanes)
        addr = unsigned(addr_bits) if slots == 1 else data.ArrayLayout(unsigned(addr_bits),
                                                                         slots)
        super().__init__({
            "r_addr": Out(addr), "r_en": Out(slots), "r_data": In(row),
            "w_addr": Out(addr), "w_en": Out(slots), "w_data": Out(row),
        })


class WordReadSignature(wiring.Signature):
    """A client's read-only access to a word memory (spike bitmaps, weights).

    Seen from the client: it drives ``addr`` and ``en``; ``data`` is valid the cycle after
    ``en`` and holds until the next enabled read.

    Members
    -------
    addr : Out(addr_bits)
    en : Out(1)
    data : In(data_shape)
    """

    def __init__(self, *, addr_bits, data_shape):
        super().__init__({"addr": Out(addr_bits), "en": Out(1), "data": In(data_shape)})


class WordWriteSignature(wiring.Signature):
    """A client's write-only access to a word memory: one write per cycle when ``en``.

    Members
    -------
    addr : Out(addr_bits)
    en : Out(1)
    data : Out(data_shape)
    """

    def __init__(self, *, addr_bits, data_shape):
        super().__init__({"addr": Out(addr_bits), "en": Out(1), "data": Out(data_shape)})
