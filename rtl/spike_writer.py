"""Spike writer: stores the aggregation core's spike rows into a layer's output bitmap.

Each row is the spikes of one channel group at one position of one timestep, i.e. exactly
one bitmap word (``docs/accelerator.md`` section 2). For a sweep the sequencer gives
``word_base = t * positions * groups + group`` and ``groups``; a row at position ``addr`` is
written to word ``word_base + addr * groups``. Every row is written, also rows without
spikes, so a bitmap never needs clearing. One row per cycle: the writer never stalls.

With ``fold`` (a space-to-depth layer with its max-pool fused, ``rtl/layout.py``) lane ``c``
of the stored word is the OR of the row's lanes ``4c .. 4c + 3`` (the four positions of one
pooling window) and the upper three quarters are zero. The spike count is the row's, before
the fold: it counts the layer's spikes, not the pool's.
"""

from amaranth.hdl import Cat, Module, Mux, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import WordWriteSignature, spike_output_layout
from .layout import SLOTS

__all__ = ["SpikeWriter", "write_params_layout"]


def write_params_layout(*, word_addr_bits, group_bits):
    """Where one sweep's rows go: the first word and the words per position."""
    return data.StructLayout({"word_base": unsigned(word_addr_bits),
                              "groups": unsigned(group_bits),
                              "fold": unsigned(1)})


class SpikeWriter(wiring.Component):
    """Write spike rows into a bitmap memory.

    Parameters
    ----------
    lanes : int
        Bits per row and per bitmap word.
    addr_bits : int
        Width of a row's position address.
    word_addr_bits, group_bits : int
        Address width of the bitmap and width of the group count.

    Members
    -------
    params : In(write_params_layout(...))
        Constant during a sweep.
    i_stream : In(stream.Signature(spike_output_layout(...)))
        Spike rows; always accepted (``ready`` is constantly 1).
    mem : Out(WordWriteSignature(addr_bits=word_addr_bits, data_shape=unsigned(lanes)))
        Write port of the bitmap memory.
    spikes : Out(range(lanes + 1))
        Number of spikes in the row written this cycle (for the spike counters).

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    """

    def __init__(self, *, lanes, addr_bits, word_addr_bits, group_bits):
        for value, what in ((lanes, "Lane count"), (addr_bits, "Position address width"),
                            (word_addr_bits, "Word address width"),
                            (group_bits, "Group count width")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"{what} must be a positive integer, not {value!r}")
        self._lanes = lanes
        super().__init__({
            "params": In(write_params_layout(word_addr_bits=word_addr_bits,
                                             group_bits=group_bits)),
            "i_stream": In(stream.Signature(spike_output_layout(addr_bits=addr_bits,
                                                                lanes=lanes))),
            "mem": Out(WordWriteSignature(addr_bits=word_addr_bits, data_shape=unsigned(lanes))),
            "spikes": Out(range(lanes + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        row = self.i_stream.payload
        slots = SLOTS
        folded = Cat(row.spikes[lane:lane + slots].any()
                     for lane in range(0, self._lanes - slots + 1, slots))
        m.d.comb += [
            self.i_stream.ready.eq(1),
            self.mem.en.eq(self.i_stream.valid),
            self.mem.addr.eq(self.params.word_base + row.addr * self.params.groups),
            self.mem.data.eq(Mux(self.params.fold, folded, row.spikes)),
        ]
        with m.If(self.i_stream.valid):
            m.d.comb += self.spikes.eq(sum(row.spikes[lane] for lane in range(self._lanes)))
        return m
