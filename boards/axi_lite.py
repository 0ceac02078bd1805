"""AXI4-Lite subordinate that turns bus transactions into register-bus accesses.

Writes: the address (AW) and data (W) channels are accepted independently, each into a
one-entry holding register (``awready``/``wready`` are high while that register is empty).
When both are held and no write response is pending, the register bus sees one ``w_en``
cycle; the response (``bvalid``, ``OKAY``) follows in the next cycle and is held until
``bready``. ``wstrb`` is not looked at: every write writes the whole word.

Reads: ``arready`` is high while no read is in flight. An accepted address gives one
``r_en`` cycle on the register bus; the adapter waits for ``r_valid`` (any number of cycles)
and then presents ``rdata`` with ``OKAY`` until ``rready``.

One write and one read may be in flight at once; they do not wait for each other, so the
register block must accept a write and a read in the same cycle.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI_OKAY, axi4_lite_signature, register_bus_signature

__all__ = ["AXI4LiteRegisters"]


class AXI4LiteRegisters(wiring.Component):
    """AXI4-Lite subordinate -> register bus.

    Parameters
    ----------
    addr_width : int
        Byte address bits of the AXI4-Lite bus and of the register bus.

    Members
    -------
    axi : In(axi4_lite_signature(addr_width=addr_width))
        The AXI4-Lite port (32-bit data).
    regs : Out(register_bus_signature(addr_width=addr_width))
        The register block's port.

    Raises
    ------
    TypeError
        ``addr_width`` is not a positive integer.
    """

    def __init__(self, *, addr_width):
        self._addr_width = addr_width
        super().__init__({
            "axi": In(axi4_lite_signature(addr_width=addr_width)),
            "regs": Out(register_bus_signature(addr_width=addr_width)),
        })

    @property
    def addr_width(self):
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        axi, regs = self.axi, self.regs

        # ---- writes
        aw_full = Signal()
        aw_addr = Signal(self._addr_width)
        w_full = Signal()
        w_data = Signal(32)
        m.d.comb += [axi.awready.eq(~aw_full), axi.wready.eq(~w_full),
                     axi.bresp.eq(AXI_OKAY)]
        with m.If(axi.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(axi.awaddr)]
        with m.If(axi.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(axi.wdata)]
        fire = aw_full & w_full & ~axi.bvalid
        m.d.comb += [regs.w_en.eq(fire), regs.w_addr.eq(aw_addr), regs.w_data.eq(w_data)]
        with m.If(fire):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), axi.bvalid.eq(1)]
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += axi.bvalid.eq(0)

        # ---- reads
        waiting = Signal()
        m.d.comb += [axi.arready.eq(~waiting & ~axi.rvalid), axi.rresp.eq(AXI_OKAY),
                     regs.r_addr.eq(axi.araddr),
                     regs.r_en.eq(axi.arvalid & axi.arready)]
        with m.If(regs.r_en):
            m.d.sync += waiting.eq(1)
        with m.If(waiting & regs.r_valid):
            m.d.sync += [waiting.eq(0), axi.rvalid.eq(1), axi.rdata.eq(regs.r_data)]
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += axi.rvalid.eq(0)
        return m
