"""``block_design.tcl`` run under Tcl with recording stand-ins for the Vivado commands.

There is no Vivado here, so the script runs in Python's Tcl interpreter (``tkinter.Tcl()``)
with every Vivado command it calls replaced by a stand-in that records what the command
would build. The stand-in of ``apply_bd_automation`` follows Vivado's rule that an
automation targets an interface pin that is not connected yet (a second automation on the
same slave pin is not applicable and is recorded as refused, which is how a DMA channel
ends up unmapped); any command
without a stand-in stops the script (Tcl's "invalid command name"). The recorded graph is
then checked against the design as intended (written out here, not read from
``boards/block_design.py``).
"""

import re
import tkinter

import pytest

from spikeforge.tools.cli import main

# The memory-mapped slave interfaces each IP of the design has (with HP0 enabled on the PS).
SLAVES = {"xilinx.com:ip:processing_system7:5.5": ["S_AXI_HP0"],
          "xilinx.com:ip:axi_dma:7.1": ["S_AXI_LITE"],
          "xilinx.com:ip:axi_intc:4.1": ["s_axi"],
          "module:spikeforge_ps": ["s_axi"]}


class VivadoStandIn:
    """The Vivado Tcl commands ``block_design.tcl`` uses, recording instead of building."""

    def __init__(self, tcl):
        self.tcl = tcl
        self.cells = {}        # cell name -> VLNV ("module:<name>" for a module reference)
        self.config = {}       # cell name -> {CONFIG.key: value}
        self.axi = {}          # master interface pin -> slaves reached through automation
        self.connected = set()  # interface pins connected so far
        self.streams = set()   # (from, to) interface nets
        self.nets = set()      # (from, to) pin nets
        self.addressed = None  # slaves with an address, once assign_bd_address ran
        self.order = []        # commands in the order they ran
        self.copies = []       # (source, destination) of file copy
        self.refused = []      # automations Vivado would not apply
        tcl.eval("rename file _tcl_file")
        tcl.eval("rename glob _tcl_glob")
        for name in ("create_project", "get_board_parts", "set_property", "add_files",
                     "update_compile_order", "create_bd_design", "create_bd_cell",
                     "apply_bd_automation", "get_bd_intf_pins", "get_bd_pins", "get_bd_ports",
                     "connect_bd_intf_net", "connect_bd_net", "create_bd_port",
                     "assign_bd_address", "validate_bd_design", "save_bd_design", "get_files",
                     "generate_target", "make_wrapper", "current_project", "current_fileset",
                     "launch_runs", "wait_on_run", "get_runs", "get_property", "open_run",
                     "report_utilization", "report_timing_summary", "get_timing_paths",
                     "file", "glob"):
            tcl.createcommand(name, self._recording(name))

    def _recording(self, name):
        handler = getattr(self, f"_{name}", None)

        def command(*args):
            self.order.append(name)
            return handler(*args) if handler is not None else ""
        return command

    @staticmethod
    def _options(args):
        options, rest, args = {}, [], list(args)
        while args:
            word = args.pop(0)
            if word.startswith("-") and word not in ("-force", "-norecurse", "-top", "-quiet"):
                options[word] = args.pop(0)
            else:
                rest.append(word)
        return options, rest

    def _get_board_parts(self, *args):
        return ""  # no TUL board files installed: the script must work without them

    def _get_bd_intf_pins(self, path):
        return path

    _get_bd_pins = _get_bd_ports = _get_bd_intf_pins

    def _create_bd_cell(self, *args):
        options, (name,) = self._options(args)
        kind = options["-type"]
        self.cells[name] = options["-vlnv"] if kind == "ip" else f"module:{options['-reference']}"
        return name

    def _set_property(self, *args):
        options, rest = self._options(args)
        if "-dict" in options:
            pairs, (target,) = self.tcl.splitlist(options["-dict"]), rest
        else:
            key, value, target = rest
            pairs = (key, value)
        if target in self.cells:
            settings = self.config.setdefault(target, {})
            for key, value in zip(pairs[::2], pairs[1::2]):
                settings[key] = value

    def _apply_bd_automation(self, *args):
        options, (target,) = self._options(args)
        if options["-rule"] != "xilinx.com:bd_rule:axi4":
            return
        if target in self.connected:
            self.refused.append(f"axi4 automation on {target}: the pin is already connected")
            return
        config = dict(zip(*[iter(self.tcl.splitlist(options["-config"]))] * 2))
        master, slave = ((config["Master"].lstrip("/"), target) if "Master" in config
                         else (target, config["Slave"].lstrip("/")))
        self.axi.setdefault(master, set()).add(slave)
        self.connected.update((master, slave))

    def _connect_bd_intf_net(self, source, sink):
        assert not {source, sink} & self.connected, (source, sink)
        self.streams.add((source, sink))
        self.connected.update((source, sink))

    def _connect_bd_net(self, source, sink):
        self.nets.add((source, sink))

    def _assign_bd_address(self, *args):
        self.addressed = set().union(*self.axi.values())

    def _get_files(self, name):
        return name

    def _make_wrapper(self, *args):
        return "/vivado/spikeforge_wrapper.v"

    def _get_property(self, name, target):
        return {"PROGRESS": "100%", "SLACK": "0.25"}[name]

    def _glob(self, *patterns):
        patterns = [p for p in patterns if not p.startswith("-")]
        return patterns[0].replace("*", "impl")

    def _file(self, *args):
        if args[0] == "copy":
            self.copies.append(tuple(a for a in args[1:] if a != "-force"))
            return ""
        return self.tcl.call("_tcl_file", *args)


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    """The stand-in after ``block_design.tcl`` of ``spikeforge build --top ps`` ran, and the
    build folder."""
    out = tmp_path_factory.mktemp("ps")
    assert main(["build", "--board", "pynq-z2", "--top", "ps", "--pes", "4",
                 "--out", str(out)]) == 0
    tcl = tkinter.Tcl()
    vivado = VivadoStandIn(tcl)
    tcl.eval(f"source {{{out / 'block_design.tcl'}}}")
    return vivado, out


def test_block_design_cells(design):
    vivado, _ = design
    assert vivado.cells == {"ps7": "xilinx.com:ip:processing_system7:5.5",
                            "dma": "xilinx.com:ip:axi_dma:7.1",
                            "spikeforge_0": "module:spikeforge_ps",
                            "axi_intc_0": "xilinx.com:ip:axi_intc:4.1",
                            "irq_concat": "xilinx.com:ip:xlconcat:2.1"}
    ps = vivado.config["ps7"]
    for port in ("PCW_USE_M_AXI_GP0", "PCW_USE_S_AXI_HP0", "PCW_USE_FABRIC_INTERRUPT",
                 "PCW_IRQ_F2P_INTR"):
        assert ps[f"CONFIG.{port}"] == "1", port
    assert vivado.config["dma"]["CONFIG.c_include_sg"] == "0"  # simple mode: the driver's


def test_each_master_connected_once_and_hp0_shared(design):
    vivado, _ = design
    assert vivado.refused == []
    assert vivado.axi == {"ps7/M_AXI_GP0": {"dma/S_AXI_LITE", "spikeforge_0/s_axi",
                                            "axi_intc_0/s_axi"},
                          "dma/M_AXI_MM2S": {"ps7/S_AXI_HP0"},
                          "dma/M_AXI_S2MM": {"ps7/S_AXI_HP0"}}
    assert vivado.streams == {("dma/M_AXIS_MM2S", "spikeforge_0/s_axis"),
                              ("spikeforge_0/m_axis", "dma/S_AXIS_S2MM")}


def test_every_axi_slave_gets_an_address(design):
    vivado, _ = design
    slaves = {f"{cell}/{pin}" for cell, vlnv in vivado.cells.items()
              for pin in SLAVES.get(vlnv, [])}
    assert vivado.addressed == slaves
    # Addresses are assigned once everything is connected, and before validation.
    assert vivado.order.index("assign_bd_address") > max(
        i for i, name in enumerate(vivado.order) if name.startswith(("apply", "connect")))
    assert vivado.order.index("validate_bd_design") > vivado.order.index("assign_bd_address")


def test_interrupts_reach_the_ps_through_an_axi_intc(design):
    # PYNQ: an AXI interrupt controller's irq on IRQ_F2P[0], the interrupts on its intr.
    vivado, _ = design
    assert vivado.config["irq_concat"]["CONFIG.NUM_PORTS"] == "3"
    assert vivado.nets == {("dma/mm2s_introut", "irq_concat/In0"),
                           ("dma/s2mm_introut", "irq_concat/In1"),
                           ("spikeforge_0/irq", "irq_concat/In2"),
                           ("irq_concat/dout", "axi_intc_0/intr"),
                           ("axi_intc_0/irq", "ps7/IRQ_F2P"),
                           ("spikeforge_0/leds", "leds")}


def test_clock_is_the_timed_frequency(design):
    vivado, out = design
    freq_hz = re.search(r"FREQ_HZ (\d+)", (out / "spikeforge_ps.v").read_text())[1]
    fclk_mhz = vivado.config["ps7"]["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"]
    assert float(fclk_mhz) * 1e6 == float(freq_hz) == 125e6  # the PYNQ-Z2 default config


def test_overlay_files_land_beside_the_script(design):
    vivado, out = design
    assert [dest for _, dest in vivado.copies] == [f"{out}/spikeforge.bit",
                                                   f"{out}/spikeforge.hwh"]
    assert vivado.order[-1] == "file"
