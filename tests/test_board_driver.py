"""The PYNQ driver against the simulated board (``tests/board_fake_pynq.py``): the register
offsets and the access sequence are proven on the RTL, without a board or pynq."""

import json

import pytest

from board_cases import SMALL_BOARD, SMALL_SIZES, digits, expectations
from board_fake_pynq import SimulatedPynq
from spikeforge.boards.driver import Accelerator, DriverError
from spikeforge.boards.program_image import program_image
from spikeforge.boards.ps_top import PSTop


@pytest.fixture(scope="module")
def case():
    network, images = digits(2, first=5)
    image = program_image(network, SMALL_BOARD, SMALL_SIZES)
    return network, images, image, expectations(network, images)


def test_driver_runs_images_dma_and_mmio(case, tmp_path):
    network, images, program, expect = case
    path = tmp_path / "program.json"
    path.write_text(json.dumps(program))
    with SimulatedPynq(PSTop(config=SMALL_BOARD, sizes=SMALL_SIZES)) as board:
        # A simulated run takes many seconds: the poll timeout is the simulator's, not 5 s.
        acc = Accelerator(program=path, mmio=board.mmio, dma=board.dma,
                          allocate=board.allocate, timeout=600)
        # The documented map (docs/board.md): ID, LANES, WIDTHS read first; the program's
        # hash is checked (CONFIG_HASH, 0x0C) before the descriptors (memory 2) go in
        # through MEM_SELECT (0x30), MEM_ADDR (0x34) and MEM_DATA (0x38).
        assert board.log[:3] == [("read", 0x00, 0x53504B46), ("read", 0x04, 4),
                                 ("read", 0x08, 8 | 24 << 8 | 16 << 16 | 8 << 24)]
        assert board.log[3][:2] == ("read", 0x0C)
        assert board.log[4:6] == [("write", 0x30, 2), ("write", 0x34, 0)]
        words = program["memories"]["descriptors"]["words"]
        assert board.log[6:6 + len(words)] == [("write", 0x38, w) for w in words]
        assert (acc.lanes, acc.membrane_bits, acc.pixel_bits) == (4, 16, 8)

        first = len(board.log)
        with_dma = acc.run(images[0])
        writes = [entry for entry in board.log[first:] if entry[0] == "write"]
        assert writes[0] == ("write", 0x18, 0b11)  # MODE: auto-start + stream results
        acc.dma = None
        without_dma = acc.run(images[1])

    for index, result in enumerate((with_dma, without_dma)):
        assert result.prediction == expect["predictions"][index]
        assert result.membranes == expect["membranes"][index]
        assert result.cycles == expect["cycles"][index]
        assert result.counters["CYCLES"] == expect["cycles"][index]
        assert result.spikes == expect["spikes"][index]


def test_driver_refuses_another_design(case):
    _, _, program, _ = case
    other = {**program, "design_hash": f"{int(program['design_hash'], 16) ^ 1:064x}"}
    with SimulatedPynq(PSTop(config=SMALL_BOARD, sizes=SMALL_SIZES)) as board:
        acc = Accelerator(mmio=board.mmio)
        with pytest.raises(DriverError, match=r"^the program was built for design 0x"):
            acc.load(other)
        with pytest.raises(DriverError, match=r"^load a program first$"):
            acc.run(None)


def test_driver_needs_an_overlay():
    with pytest.raises(DriverError, match=r"^Accelerator needs an overlay bitfile or an mmio "
                                          r"object$"):
        Accelerator()
