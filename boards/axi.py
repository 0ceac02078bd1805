"""AXI4-Lite, AXI4-Stream and register-bus signatures used by the PS-attached top.

Each signature is written from the point of view of the side that starts transfers (the AXI
manager, the stream's transmitter, the register bus's initiator): its ``Out`` members are
driven by that side. A subordinate uses it flipped (``In(signature)``). Member names are the
AMBA signal names in lower case, so that a flat top level (``boards/ps_top.py``) can expose
them as ``s_axi_awaddr``, ``s_axis_tdata`` and so on, the names Vivado and cocotbext-axi
recognise.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..rtl.checks import check_int

__all__ = ["axi4_lite_signature", "axi4_stream_signature", "register_bus_signature",
           "AXI_OKAY", "AXI_SLVERR"]

AXI_OKAY = 0b00
AXI_SLVERR = 0b10


def axi4_lite_signature(*, addr_width, data_width=32):
    """AXI4-Lite, manager side (five channels, no IDs, no bursts).

    Raises
    ------
    TypeError
        ``addr_width`` is not a positive integer or ``data_width`` is not 32 or 64.
    """
    check_int(addr_width, "Address width")
    if data_width not in (32, 64):
        raise TypeError(f"AXI4-Lite data width must be 32 or 64, not {data_width!r}")
    return wiring.Signature({
        "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def axi4_stream_signature(*, data_width=32):
    """AXI4-Stream, transmitter side: ``tdata``, ``tkeep``, ``tlast``, ``tvalid``/``tready``.

    Raises
    ------
    TypeError
        ``data_width`` is not a positive multiple of 8.
    """
    check_int(data_width, "Stream data width", 8)
    if data_width % 8:
        raise TypeError(f"Stream data width must be a multiple of 8, not {data_width!r}")
    return wiring.Signature({
        "tdata": Out(data_width), "tkeep": Out(data_width // 8), "tlast": Out(1),
        "tvalid": Out(1), "tready": In(1),
    })


def register_bus_signature(*, addr_width, data_width=32):
    """The register block's side of the AXI4-Lite adapter, initiator side.

    A write is a one-cycle ``w_en`` with ``w_addr``/``w_data``; it always completes. A read is
    a one-cycle ``r_en`` with ``r_addr``; the register block answers with ``r_valid`` (and
    ``r_data``) in a later cycle, as late as it needs to (``boards/axi_lite.py`` waits).
    """
    check_int(addr_width, "Address width")
    check_int(data_width, "Data width")
    return wiring.Signature({
        "w_en": Out(1), "w_addr": Out(addr_width), "w_data": Out(data_width),
        "r_en": Out(1), "r_addr": Out(addr_width),
        "r_data": In(data_width), "r_valid": In(1),
    })
