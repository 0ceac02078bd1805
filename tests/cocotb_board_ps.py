"""cocotb test of the PS-attached top (``boards/ps_top.py``) driven only through AXI.

Started by ``tests/test_board_ps_cosim.py`` through ``cocotb_tools.runner``; the case (program
image, images, golden expectations) comes as a JSON file named by ``SPIKEFORGE_BOARD_CASE``.
cocotbext-axi plays the Zynq side: an AXI4-Lite manager (the PS's GP port) and an AXI4-Stream
source and sink (the AXI DMA's MM2S and S2MM channels). With ``SPIKEFORGE_PAUSE_SEED`` set,
every AXI4-Lite channel and both streams pause at random (seeded): the manager's and the
source's valid and the sink's ready drop on about :data:`PAUSE_PROBABILITY` of the cycles,
so the design must hold its outputs under backpressure and accept bubbles.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

from spikeforge.boards.regmap import (IRQ_DONE, MAGIC, MODE_AUTO_START, MODE_STREAM_RESULTS,
                                      REGISTERS, STATUS_DONE, Memory)

R = REGISTERS
#: Chance that a paused channel idles on a cycle.
PAUSE_PROBABILITY = 0.3


def _pauses(rng):
    while True:
        yield rng.random() < PAUSE_PROBABILITY


def _signed(word, bits=32):
    return word - (1 << bits) if word >> (bits - 1) else word


class Host:
    """The PS side: register access and DMA-like streams."""

    def __init__(self, dut):
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk,
                                      dut.aresetn, reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        seed = os.environ.get("SPIKEFORGE_PAUSE_SEED")
        if seed is not None:
            rng = random.Random(int(seed))
            write, read = self.axil.write_if, self.axil.read_if
            for channel in (write.aw_channel, write.w_channel, write.b_channel,
                            read.ar_channel, read.r_channel, self.source, self.sink):
                # One generator per channel, each seeded from the run's seed.
                channel.set_pause_generator(_pauses(random.Random(rng.getrandbits(32))))

    async def read(self, name):
        return await self.axil.read_dword(R[name])

    async def write(self, name, value):
        await self.axil.write_dword(R[name], value)

    async def load(self, number, words):
        await self.write("MEM_SELECT", number)
        await self.write("MEM_ADDR", 0)
        for word in words:
            await self.write("MEM_DATA", word)


@cocotb.test()
async def full_inference_through_axi(dut):
    case = json.loads(open(os.environ["SPIKEFORGE_BOARD_CASE"]).read())
    image, expect = case["program"], case["expect"]
    Clock(dut.aclk, 8, unit="ns").start()
    host = Host(dut)
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 8)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)

    assert await host.read("ID") == MAGIC
    assert await host.read("LANES") == image["lanes"]
    assert await host.read("CONFIG_HASH") == int(image["design_hash"], 16) & 0xFFFF_FFFF

    # Program the network: descriptors, weights, biases, then the output geometry.
    for name in ("descriptors", "weights", "biases"):
        number = Memory.NAMES.index(name)
        await host.load(number, image["memories"][name]["words"])
        rows = image["memories"][name]["rows"]
        assert await host.read("MEM_ADDR") == rows, f"{name}: cursor after {rows} rows"
    await host.write("OUT_CHANNELS", image["output"]["channels"])
    await host.write("OUT_POSITIONS", image["output"]["positions"])
    await host.write("MODE", MODE_AUTO_START | MODE_STREAM_RESULTS)
    await host.write("IRQ_ENABLE", IRQ_DONE)
    outputs = image["output"]["channels"] * image["output"]["positions"]

    for index, pixels in enumerate(case["images"]):
        assert dut.irq.value == 0
        # An image is one packet of bytes (8-bit pixel containers); the last packet is
        # sent short of a whole word to exercise tkeep.
        await host.source.send(AxiStreamFrame(bytes(pixels)))
        frame = await with_timeout(host.sink.recv(), 10, "ms")
        data = bytes(frame.tdata)
        words = [int.from_bytes(data[4 * k:4 * k + 4], "little") for k in range(len(data) // 4)]
        assert len(words) == outputs + 2, f"image {index}: packet of {len(words)} words"
        membranes = [_signed(word) for word in words[:outputs]]
        assert membranes == expect["membranes"][index], f"image {index}: output membranes"
        assert words[outputs] == expect["predictions"][index], f"image {index}: prediction"
        assert words[outputs + 1] == expect["cycles"][index], f"image {index}: cycles"

        for _ in range(4):  # the packet's end and the interrupt are the same cycle's doing
            await RisingEdge(dut.aclk)
        assert dut.irq.value == 1, f"image {index}: no interrupt"
        assert await host.read("STATUS") & STATUS_DONE
        assert await host.read("PREDICTION") == expect["predictions"][index]
        assert await host.read("CYCLES") == expect["cycles"][index]
        assert await host.read("RUNS") == index + 1
        await host.write("MEM_SELECT", Memory.SPIKE_COUNTS)
        await host.write("MEM_ADDR", 0)
        counts = [await host.read("MEM_RDATA") for _ in image["layers"]]
        spikes = {layer["name"]: count for layer, count in zip(image["layers"], counts)
                  if layer["spikes"]}
        assert spikes == expect["spikes"][index], f"image {index}: spike counters"
        await host.write("IRQ_STATUS", IRQ_DONE)
        assert await host.read("IRQ_STATUS") == 0
