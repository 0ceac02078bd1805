"""The PYNQ driver against the simulated board (``tests/board_fake_pynq.py``): the register
offsets and the access sequence are proven on the RTL, without a board or pynq."""

import json

import numpy as np
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


class _Registers:
    """MMIO of an accelerator that accepts everything and never finishes a run."""

    def __init__(self, program):
        from spikeforge.boards.regmap import MAGIC, REGISTERS, STATUS_BUSY
        self.offsets = REGISTERS
        self.values = {REGISTERS["ID"]: MAGIC, REGISTERS["LANES"]: program["lanes"],
                       REGISTERS["CONFIG_HASH"]: int(program["design_hash"], 16) & 0xFFFF_FFFF,
                       REGISTERS["STATUS"]: STATUS_BUSY, REGISTERS["CYCLES"]: 1234}

    def read(self, offset):
        return self.values.get(offset, 0)

    def write(self, offset, value):
        if offset == self.offsets["MODE"]:
            self.values[offset] = value


class _StuckChannel:
    """A DMA channel whose transfer never completes (PYNQ's wait() would spin forever)."""

    idle = False

    def transfer(self, buffer):
        pass

    def wait(self):
        raise AssertionError("wait() before the channel is idle hangs on a board")


class _StuckDMA:
    def __init__(self):
        self.sendchannel, self.recvchannel = _StuckChannel(), _StuckChannel()


@pytest.mark.parametrize("dma", [_StuckDMA, None], ids=["dma", "mmio"])
def test_driver_times_out_naming_the_register_state(case, dma):
    _, images, program, _ = case
    acc = Accelerator(program=program, mmio=_Registers(program),
                      dma=dma and dma(), allocate=np.zeros, timeout=0.2)
    what = "the image transfer (DMA MM2S)" if dma else "the run"
    dma_state = ", DMA sendchannel not idle, DMA recvchannel not idle" if dma else ""
    mode = "0x3" if dma else "0x0"
    with pytest.raises(DriverError) as raised:
        acc.run(images[0])
    assert str(raised.value) == (f"{what} did not finish within 0.2 s (STATUS 0x00000001 "
                                 f"[busy], MODE {mode}, CYCLES 1234, RUNS 0{dma_state})")
