"""``spikeforge synth`` and the device check: Yosys output parsing, a real (small) synthesis,
the command's report and exit status, and ``fits(network, device=...)``."""

import json

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from board_cases import digits
from spikeforge.boards import device as device_module
from spikeforge.boards.device import DeviceFit
from spikeforge.boards.synth import (SynthError, SynthReport, parse_sta, parse_stat,
                                     resources_from_cells, synthesize, synthesize_component)
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.tools.cli import main
from spikeforge.tools.synth import synth_lines

STAT = """
6. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
      768 wires
     1549 wire bits
       11 ports
      197 port bits
      472 cells
        7   $check
        1   BUFG
        4   CARRY4
        2   DSP48E1
       20   FDRE
        1   FDSE
        2   INV
       10   LUT2
        5   LUT6
        3   RAM64M
        1   RAM32X1D
        1   RAMB36E1
        3   RAMB18E1
"""

STA = """
8. Executing STA pass (static timing analysis).
Latest arrival time in 'top' is 5846:
    5846 $abc$1$lut (LUT6.I3->O)
           $a [3]
    5439 $auto$carry4 (CARRY4.S->O)
           $b
    2550 top.mem.0.0 (RAMB18E1.CLKBWRCLK->DOBDO)
           \\clk
"""


def test_parse_stat_and_resources():
    cells = parse_stat(STAT)
    assert cells == {"BUFG": 1, "CARRY4": 4, "DSP48E1": 2, "FDRE": 20, "FDSE": 1, "INV": 2,
                     "LUT2": 10, "LUT6": 5, "RAM64M": 3, "RAM32X1D": 1, "RAMB36E1": 1,
                     "RAMB18E1": 3}
    resources = resources_from_cells(cells)
    used = {name: row["used"] for name, row in resources.items()}
    # LUT: 10 + 5 + 2 (INV) logic + 3 * 4 + 1 * 2 as memory; BRAM: 1 + 3 / 2.
    assert used == {"LUT": 31, "LUTRAM": 14, "FF": 21, "CARRY4": 4, "RAMB36": 1,
                    "RAMB18": 3, "BRAM": 2.5, "DSP48E1": 2}
    assert resources["LUT"]["available"] == 53200
    assert resources["BRAM"] == {"used": 2.5, "available": 140, "percent": 1.79}
    assert resources["DSP48E1"]["percent"] == round(100 * 2 / 220, 2)


def test_parse_sta():
    assert parse_sta(STA) == {"arrival_ps": 5846, "path": ["RAMB18E1", "CARRY4", "LUT6"]}
    assert parse_sta("no timing here") is None


class _MemoryAndMultiply(wiring.Component):
    """A 1024 x 16 memory feeding a registered signed 16 x 16 multiply."""

    addr: In(10)
    w_data: In(16)
    w_en: In(1)
    factor: In(signed(16))
    product: Out(signed(32))

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=signed(16), depth=1024, init=[])
        read, write = mem.read_port(), mem.write_port()
        m.d.comb += [read.addr.eq(self.addr), write.addr.eq(self.addr),
                     write.data.eq(self.w_data), write.en.eq(self.w_en)]
        held = Signal(signed(32))
        m.d.sync += [held.eq(read.data * self.factor), self.product.eq(held)]
        return m


def test_synthesize_small_design(tmp_path, monkeypatch):
    from amaranth.back import verilog
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path))
    text = verilog.convert(_MemoryAndMultiply(), name="small", emit_src=False)
    report = synthesize_component(_MemoryAndMultiply(), "small", timing=True)
    assert not report.cached
    assert (report.resources["RAMB18"]["used"], report.resources["DSP48E1"]["used"]) == (1, 1)
    assert report.fits and report.over() == []
    assert report.timing["arrival_ps"] > 0 and "pre-route" in report.timing["note"]
    again = synthesize(text, "small")  # the component's Verilog: the same cache entry
    assert again.cached and again.resources == report.resources


def test_synthesize_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path))
    with pytest.raises(SynthError, match=r"^yosys did not finish synthesising small within "
                                         r"0\.01 s$"):
        synthesize_component(_MemoryAndMultiply(), "small", timeout=0.01)


def _fake_synthesize(over):
    def fake(verilog, top, *, progress=None, use_cache=True):
        cells = {"LUT6": 1000, "FDRE": 500, "RAMB36E1": 150 if over else 10, "DSP48E1": 4}
        return SynthReport(device="xc7z020clg400-1", top=top, cells=cells,
                           resources=resources_from_cells(cells),
                           timing={"arrival_ps": 6000, "path": [], "mhz": 166.7,
                                   "note": "pre-route, optimistic"},
                           seconds=1.0, cached=False)
    return fake


@pytest.mark.parametrize("over", [False, True])
def test_synth_command(over, monkeypatch, capsys):
    monkeypatch.setattr(device_module, "synthesize", _fake_synthesize(over))
    status = main(["synth", "--board", "pynq-z2", "--pes", "4", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert status == (1 if over else 0)
    assert summary["device"] == "xc7z020clg400-1" and summary["config"]["pes"] == 4
    assert summary["resources"]["RAMB36"] == {
        "used": 150 if over else 10, "available": 140,
        "percent": round(100 * (150 if over else 10) / 140, 2)}
    assert set(summary["resources"]) >= {"LUT", "FF", "RAMB36", "RAMB18", "DSP48E1"}
    assert summary["fits"] is not over
    assert summary["over"] == (["RAMB36 needs 150 of 140 (107.1 %)",
                                "BRAM needs 150 of 140 (107.1 %)"] if over else [])
    text = "\n".join(synth_lines(summary))  # what the command prints without --json
    assert "pre-route, optimistic" in text
    assert ("fits the xc7z020clg400-1: NO - RAMB36 needs 150 of 140" in text) is over


def test_synth_with_narrow_membranes_compares_with_the_full_width_design(monkeypatch, capsys):
    # --membrane-bits 4 synthesises the 4-bit design and the same design at the board's 16
    # bits; each Verilog gets its own (fake) counts, and the saving is their difference.
    seen = {}

    def fake(verilog, top, *, progress=None, use_cache=True):
        index = seen.setdefault(verilog, len(seen))   # 0: the narrow design, 1: the full one
        cells = {"LUT6": (900, 1000)[index], "FDRE": (400, 500)[index],
                 "RAMB36E1": (8, 10)[index], "DSP48E1": 4}
        return SynthReport(device="xc7z020clg400-1", top=top, cells=cells,
                           resources=resources_from_cells(cells), timing=None, seconds=1.0,
                           cached=False)

    monkeypatch.setattr(device_module, "synthesize", fake)
    assert main(["synth", "--pes", "4", "--membrane-bits", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(seen) == 2 and summary["config"]["membrane_bits"] == 4
    against = summary["against"]
    assert against["membrane_bits"] == 16 and against["resources"]["LUT"]["used"] == 1000
    assert {k: against["saved"][k] for k in ("LUT", "FF", "BRAM", "DSP48E1")} == {
        "LUT": 100, "FF": 100, "BRAM": 2, "DSP48E1": 0}
    assert ("against the same design with 16-bit membranes: LUT 1000 (100 fewer here), FF 500 "
            "(100 fewer here), BRAM 10 (2 fewer here), DSP48E1 4 (the same here)"
            in synth_lines(summary))
    seen.clear()   # the board's own width: nothing to compare with
    assert main(["synth", "--pes", "4", "--membrane-bits", "16", "--json"]) == 0
    assert len(seen) == 1 and "against" not in json.loads(capsys.readouterr().out)


def test_fits_with_device_check(monkeypatch):
    network, _ = digits(1)
    config = AcceleratorConfig(pes=4)
    monkeypatch.setattr(device_module, "synthesize", _fake_synthesize(True))
    report = config.fits(network, device=DeviceFit("pynq-z2"))
    assert not report
    assert report.reasons == (
        "the ps design needs more than the xc7z020clg400-1 has: RAMB36 needs 150 of 140 "
        "(107.1 %)",
        "the ps design needs more than the xc7z020clg400-1 has: BRAM needs 150 of 140 "
        "(107.1 %)")
    monkeypatch.setattr(device_module, "synthesize", _fake_synthesize(False))
    assert config.fits(network, device=DeviceFit("pynq-z2"))
    assert config.fits(network)  # no device: no synthesis at all
