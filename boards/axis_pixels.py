"""AXI4-Stream receiver that writes an image into the accelerator's pixel memory.

An image is one packet (``tlast`` on its final beat). Pixels are packed little-endian in
32-bit beats, ``32 // container`` per beat, where the container is the smallest of 8, 16
and 32 bits that holds ``pixel_bits`` (so a ``uint8``/``uint16`` NumPy image is sent as it
is in memory). Pixel ``i`` of the packet goes to pixel address ``i`` (``rtl/program.py``:
pixel ``(c, y, x)`` at ``c * H * W + y * W + x``); a pixel whose first byte has ``tkeep``
low is skipped, so the last beat of an image may be partly filled. After the final beat's
pixels are written, ``image_done`` is high for one cycle and the next packet starts again
at address 0.

A beat is taken (``tready``) only while ``enable`` is high and the previous beat's pixels
have been written; each pixel waits for ``w_ready`` (the host port is shared).
"""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import axi4_stream_signature

__all__ = ["PixelStreamIn", "pixel_container_bits"]


def pixel_container_bits(pixel_bits):
    """Bits one pixel occupies in a stream beat: 8, 16 or 32.

    Raises
    ------
    TypeError
        ``pixel_bits`` is not an integer in 1..32.
    """
    if isinstance(pixel_bits, bool) or not isinstance(pixel_bits, int) or not (
            1 <= pixel_bits <= 32):
        raise TypeError(f"Pixel width must be an integer in 1..32, not {pixel_bits!r}")
    return next(bits for bits in (8, 16, 32) if pixel_bits <= bits)


class PixelStreamIn(wiring.Component):
    """Image packets -> pixel-memory writes.

    Parameters
    ----------
    pixel_bits : int
    addr_bits : int
        Width of the write address (pixel memory rows).

    Members
    -------
    axis : In(axi4_stream_signature(data_width=32))
    enable : In(1)
    w_addr : Out(addr_bits)
    w_data : Out(pixel_bits)
    w_en : Out(1)
        A pixel write request, held until ``w_ready``.
    w_ready : In(1)
    image_done : Out(1)
    """

    def __init__(self, *, pixel_bits, addr_bits):
        self._container = pixel_container_bits(pixel_bits)
        if isinstance(addr_bits, bool) or not isinstance(addr_bits, int) or addr_bits < 1:
            raise TypeError(f"Address width must be a positive integer, not {addr_bits!r}")
        self._pixel_bits = pixel_bits
        super().__init__({
            "axis": In(axi4_stream_signature(data_width=32)),
            "enable": In(1),
            "w_addr": Out(addr_bits), "w_data": Out(pixel_bits), "w_en": Out(1),
            "w_ready": In(1),
            "image_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        axis = self.axis
        container = self._container
        per_beat = 32 // container
        beat = Signal(32)
        keep = Signal(4)
        last = Signal()
        slot = Signal(range(per_beat))
        pixels = Array(beat[k * container:k * container + self._pixel_bits]
                       for k in range(per_beat))
        kept = Array(keep[k * container // 8] for k in range(per_beat))
        m.d.comb += self.w_data.eq(pixels[slot])

        with m.FSM():
            with m.State("TAKE"):
                m.d.comb += axis.tready.eq(self.enable)
                with m.If(axis.tvalid & self.enable):
                    m.d.sync += [beat.eq(axis.tdata), keep.eq(axis.tkeep), last.eq(axis.tlast),
                                 slot.eq(0)]
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += self.w_en.eq(kept[slot])
                with m.If(~kept[slot] | self.w_ready):
                    with m.If(kept[slot]):
                        m.d.sync += self.w_addr.eq(self.w_addr + 1)
                    m.d.sync += slot.eq(slot + 1)
                    with m.If(slot == per_beat - 1):
                        with m.If(last):
                            m.d.comb += self.image_done.eq(1)
                            m.d.sync += self.w_addr.eq(0)
                        m.next = "TAKE"
        return m
