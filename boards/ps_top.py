"""The PS-attached top: the accelerator behind AXI4-Lite and AXI4-Stream, for a Zynq block design.

Ports have the AMBA names Vivado's block designer and cocotbext-axi recognise, and carry
``X_INTERFACE_INFO`` attributes so that the interfaces are unambiguous (write the hand-off
Verilog with ``boards/handoff.py``: it keeps each port's attributes its own):

* ``aclk``, ``aresetn`` (active-low, synchronous): the one clock domain;
* ``s_axi_*``: AXI4-Lite subordinate, 32-bit data, ``ADDR_WIDTH``-bit byte addresses, the
  register map of ``boards/regmap.py``;
* ``s_axis_*``: images in (an AXI DMA's MM2S channel); ``m_axis_*``: result packets out
  (its S2MM channel), both 32-bit with ``tkeep`` and ``tlast``;
* ``irq``: level-high interrupt;
* ``leds``: run state for four LEDs (run on, done, interrupt pending, error).

Inside: :class:`~.axi_lite.AXI4LiteRegisters` -> :class:`~.host_shell.HostShell` -> the
accelerator's host memory port (``rtl/top.py``, ``rtl/host_port.py``). Nothing here requests
platform pins; the block-design Tcl (``boards/block_design.py``) wires it to the PS.
"""

from amaranth.hdl import ClockDomain, ClockSignal, Module, ResetSignal, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..rtl.config import AcceleratorConfig
from ..rtl.sizing import Design
from ..rtl.top import Top
from .axi import axi4_lite_signature, axi4_stream_signature
from .axi_lite import AXI4LiteRegisters
from .host_shell import HostShell
from .regmap import ADDR_WIDTH, COUNTERS, READABLE, WRITABLE, Memory

__all__ = ["PSTop", "BUS_PREFIXES"]

#: Flat port prefix -> (signature, the top's role: "subordinate"/"receiver" flip it).
BUS_PREFIXES = {
    "s_axi": (axi4_lite_signature(addr_width=ADDR_WIDTH), True),
    "s_axis": (axi4_stream_signature(data_width=32), True),
    "m_axis": (axi4_stream_signature(data_width=32), False),
}

_INTERFACES = {"s_axi": "xilinx.com:interface:aximm:1.0",
               "s_axis": "xilinx.com:interface:axis:1.0",
               "m_axis": "xilinx.com:interface:axis:1.0"}


def _flat_members():
    members = {"aclk": In(1), "aresetn": In(1), "irq": Out(1), "leds": Out(4)}
    for prefix, (signature, flip) in BUS_PREFIXES.items():
        for name, member in signature.members.items():
            members[f"{prefix}_{name}"] = member.flip() if flip else member
    return members


class PSTop(wiring.Component):
    """Accelerator + host shell with flat AXI ports.

    Parameters
    ----------
    config : AcceleratorConfig
    sizes : rtl.sizing.MemorySizes
        The ``Top`` sizes (the board design's, ``rtl.sizing.for_board``).

    Members
    -------
    aclk, aresetn : In(1)
    irq : Out(1)
    leds : Out(4)
    s_axi_awaddr ... s_axi_rready : the AXI4-Lite subordinate
    s_axis_tdata ... s_axis_tready : image stream in
    m_axis_tdata ... m_axis_tready : result stream out

    Raises
    ------
    TypeError
        ``config`` is not an ``AcceleratorConfig`` (or a size is invalid, from ``Top``).
    """

    def __init__(self, *, config, sizes):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"Config must be an AcceleratorConfig, not {config!r}")
        self._sizes = sizes
        self._config = config
        self.top = top = Top(config=config, sizes=sizes)

        def width(number):
            return Shape.cast(getattr(top, Memory.NAMES[number]).shape).width

        self.shell = HostShell(
            lanes=config.pes, weight_bits=config.weight_bits, psum_bits=config.psum_bits,
            membrane_bits=config.core_membrane_bits, pixel_bits=sizes.pixel_bits,
            write_bits={number: width(number) for number in WRITABLE},
            read_bits={number: width(number) for number in READABLE},
            addr_bits=len(top.host.w_addr), w_data_bits=len(top.host.w_data),
            r_data_bits=len(top.host.r_data),
            design_hash=Design(config, sizes).hash)
        self.bus = AXI4LiteRegisters(addr_width=ADDR_WIDTH)
        super().__init__(_flat_members())
        self._annotate()

    @property
    def config(self):
        return self._config

    @property
    def sizes(self):
        return self._sizes

    def _annotate(self):
        # Vivado reads these when the module is added to a block design as a module reference.
        for prefix, (signature, _) in BUS_PREFIXES.items():
            for name in signature.members:
                getattr(self, f"{prefix}_{name}").attrs["X_INTERFACE_INFO"] = (
                    f"{_INTERFACES[prefix]} {prefix} {name.upper()}")
        self.aclk.attrs["X_INTERFACE_INFO"] = "xilinx.com:signal:clock:1.0 aclk CLK"
        # FREQ_HZ: the frequency the design is timed for; the block design's FCLK_CLK0 must
        # match it or validate_bd_design reports a frequency mismatch on the interfaces.
        self.aclk.attrs["X_INTERFACE_PARAMETER"] = (
            "ASSOCIATED_BUSIF s_axi:s_axis:m_axis, ASSOCIATED_RESET aresetn, "
            f"FREQ_HZ {round(self._config.clock_hz)}")
        self.aresetn.attrs["X_INTERFACE_INFO"] = "xilinx.com:signal:reset:1.0 aresetn RST"
        self.aresetn.attrs["X_INTERFACE_PARAMETER"] = "POLARITY ACTIVE_LOW"
        self.irq.attrs["X_INTERFACE_INFO"] = "xilinx.com:signal:interrupt:1.0 irq INTERRUPT"
        self.irq.attrs["X_INTERFACE_PARAMETER"] = "SENSITIVITY LEVEL_HIGH"

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.top = core = self.top
        m.submodules.shell = shell = self.shell
        m.submodules.bus = bus = self.bus
        inner = {"s_axi": bus.axi, "s_axis": shell.s_axis, "m_axis": shell.m_axis}
        for prefix, (signature, flip) in BUS_PREFIXES.items():
            for name, member in signature.members.items():
                outer, port = getattr(self, f"{prefix}_{name}"), getattr(inner[prefix], name)
                # A member the manager/transmitter drives comes in when the top is the
                # subordinate/receiver (flip) and goes out otherwise.
                if (member.flow == Out) == flip:
                    m.d.comb += port.eq(outer)
                else:
                    m.d.comb += outer.eq(port)
        wiring.connect(m, bus.regs, shell.regs)
        wiring.connect(m, shell.host, core.host)
        m.d.comb += [core.start.eq(shell.start), shell.busy.eq(core.busy),
                     shell.done.eq(core.done), self.irq.eq(shell.irq),
                     self.leds.eq(shell.leds)]
        m.d.comb += [getattr(shell, name).eq(getattr(core, name)) for name in COUNTERS.values()]
        return m
