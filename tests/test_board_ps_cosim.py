"""The PS-attached top's Verilog on Verilator, driven only through AXI by cocotbext-axi.

A full inference per image: the network is loaded over AXI4-Lite, each image goes in on the
AXI4-Stream input (auto-start), the result packet comes out on the AXI4-Stream output and
must hold the golden model's output membranes and prediction and the cycle model's cycle
count; the interrupt, the status and counter registers and the per-layer spike counters are
checked too (``tests/cocotb_board_ps.py``). Every AXI channel pauses at random (cocotbext-axi
pause generators, seeded with :data:`PAUSE_SEED`), so this holds under backpressure on
AXI4-Lite and on both streams. The Verilator build is cached by the Verilog's
hash (``boards/cache.py``), so only a changed design rebuilds.
"""

import json
import os
from pathlib import Path

from amaranth.back import verilog

from board_cases import SMALL_BOARD, SMALL_SIZES, digits, expectations
from cosim_build import verilator_runner
from spikeforge.boards.program_image import program_image
from spikeforge.boards.ps_top import PSTop

HERE = Path(__file__).parent
#: Seed of the pause generators (a failure reproduces with the same seed).
PAUSE_SEED = 20


def test_full_inference_through_axi(tmp_path, monkeypatch):
    network, images = digits(3)
    images = images.astype("uint8")
    case = {
        "program": program_image(network, SMALL_BOARD, SMALL_SIZES),
        "images": [image.reshape(-1).tolist() for image in images],
        "expect": expectations(network, images),
    }
    text = verilog.convert(PSTop(config=SMALL_BOARD, sizes=SMALL_SIZES), name="spikeforge_ps",
                           emit_src=False)
    runner, build_dir = verilator_runner(text, "spikeforge_ps", monkeypatch)
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get(
        "PYTHONPATH", "")]))
    runner.test(hdl_toplevel="spikeforge_ps", test_module="cocotb_board_ps",
                build_dir=build_dir, test_dir=tmp_path,
                extra_env={"SPIKEFORGE_BOARD_CASE": str(path),
                           "SPIKEFORGE_PAUSE_SEED": str(PAUSE_SEED),
                           "COCOTB_LOG_LEVEL": "WARNING"})
