# amaranth: UnusedElaboratable=no
"""The PS shell's parts on their own, in the Amaranth simulator: the AXI4-Lite adapter, the
image stream writer, the memory window, the read-out and the result stream."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from rtl_models import run_sim
from spikeforge.boards.axi_lite import AXI4LiteRegisters
from spikeforge.boards.axis_pixels import PixelStreamIn, pixel_container_bits
from spikeforge.boards.axis_results import ResultStreamOut
from spikeforge.boards.memory_window import MemoryWindow
from spikeforge.boards.readout import Readout
from spikeforge.rtl.host_port import HostMemory
from spikeforge.sim.streams import StreamTimeout, stream_put

TIMEOUT = 200


def _run(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in background:
        sim.add_process(bench)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


async def _wait(ctx, signal, what):
    for _ in range(TIMEOUT):
        if ctx.get(signal):
            return
        await ctx.tick()
    raise StreamTimeout(f"{what} not within {TIMEOUT} cycles")


# --------------------------------------------------------------------------- AXI4-Lite


@pytest.mark.parametrize("order", ["aw first", "w first", "together"])
def test_axi_lite_write(order):
    dut = AXI4LiteRegisters(addr_width=12)
    axi, regs = dut.axi, dut.regs
    seen = []

    async def monitor(ctx):
        async for _, _, en, addr, data in ctx.tick().sample(regs.w_en, regs.w_addr,
                                                            regs.w_data):
            if en:
                seen.append((addr, data))

    async def bench(ctx):
        for address, value in ((0x10, 0xDEADBEEF), (0x3C, 7)):
            channels = [(axi.awvalid, axi.awaddr, address, axi.awready),
                        (axi.wvalid, axi.wdata, value, axi.wready)]
            if order == "w first":
                channels.reverse()
            if order == "together":
                for valid, data, payload, _ in channels:
                    ctx.set(valid, 1)
                    ctx.set(data, payload)
                await ctx.tick()
                for valid, _, _, _ in channels:
                    ctx.set(valid, 0)
            else:
                for valid, data, payload, ready in channels:
                    ctx.set(valid, 1)
                    ctx.set(data, payload)
                    await _wait(ctx, ready, "ready")
                    await ctx.tick()
                    ctx.set(valid, 0)
                    await ctx.tick().repeat(2)
            await _wait(ctx, axi.bvalid, "bvalid")
            assert ctx.get(axi.bresp) == 0
            await ctx.tick().repeat(2)  # the response holds until bready
            assert ctx.get(axi.bvalid)
            ctx.set(axi.bready, 1)
            await ctx.tick()
            ctx.set(axi.bready, 0)
            assert not ctx.get(axi.bvalid)

    _run(dut, bench, background=[monitor])
    assert seen == [(0x10, 0xDEADBEEF), (0x3C, 7)]


def test_axi_lite_read_waits_for_the_register_block():
    dut = AXI4LiteRegisters(addr_width=12)
    axi, regs = dut.axi, dut.regs
    values = {0x04: 0x1234, 0x3C: 0xCAFEF00D}
    delays = {0x04: 1, 0x3C: 5}

    async def registers(ctx):
        while True:
            _, _, r_en, r_addr = await ctx.tick().sample(regs.r_en, regs.r_addr)
            if r_en:
                if delays[r_addr] > 1:
                    await ctx.tick().repeat(delays[r_addr] - 1)
                ctx.set(regs.r_valid, 1)
                ctx.set(regs.r_data, values[r_addr])
                await ctx.tick()
                ctx.set(regs.r_valid, 0)

    async def bench(ctx):
        for address, value in values.items():
            ctx.set(axi.arvalid, 1)
            ctx.set(axi.araddr, address)
            await _wait(ctx, axi.arready, "arready")
            await ctx.tick()
            ctx.set(axi.arvalid, 0)
            assert not ctx.get(axi.arready)  # one read in flight
            await _wait(ctx, axi.rvalid, "rvalid")
            assert (ctx.get(axi.rdata), ctx.get(axi.rresp)) == (value, 0)
            await ctx.tick().repeat(3)  # rvalid holds until rready
            assert ctx.get(axi.rvalid)
            ctx.set(axi.rready, 1)
            await ctx.tick()
            ctx.set(axi.rready, 0)
            assert not ctx.get(axi.rvalid)

    _run(dut, bench, background=[registers])


def test_axi_lite_wrong_width():
    with pytest.raises(TypeError, match=r"^Address width must be a positive integer, not 0$"):
        AXI4LiteRegisters(addr_width=0)


def test_axi_stream_wrong_width():
    from spikeforge.boards.axi import axi4_stream_signature

    with pytest.raises(TypeError, match=r"^Stream data width must be an integer >= 8, not 4$"):
        axi4_stream_signature(data_width=4)


# --------------------------------------------------------------------------- image stream


@pytest.mark.parametrize("pixel_bits, container", [(1, 8), (8, 8), (9, 16), (16, 16),
                                                   (17, 32), (32, 32)])
def test_pixel_container(pixel_bits, container):
    assert pixel_container_bits(pixel_bits) == container


def test_pixel_container_wrong():
    with pytest.raises(TypeError, match=r"^Pixel width must be an integer in 1..32, not 33$"):
        pixel_container_bits(33)


@pytest.mark.parametrize("pixel_bits", [8, 12])
def test_pixel_stream_writes_images(pixel_bits):
    dut = PixelStreamIn(pixel_bits=pixel_bits, addr_bits=8)
    axis = dut.axis
    rng = np.random.default_rng(pixel_bits)
    dtype = np.uint8 if pixel_bits <= 8 else np.uint16
    # Two images: 10 pixels (a partial last beat, tkeep), then 4.
    images = [rng.integers(0, 1 << pixel_bits, size=n).astype(dtype) for n in (10, 4)]
    writes, done = [], []

    async def sink(ctx):
        step = 0
        async for _, _, en, ready, addr, data, image_done in ctx.tick().sample(
                dut.w_en, dut.w_ready, dut.w_addr, dut.w_data, dut.image_done):
            if en and ready:
                writes.append((addr, data))
            if image_done:
                done.append(len(writes))
            step += 1
            ctx.set(dut.w_ready, step % 3 != 0)  # the host port is busy one cycle in three

    async def source(ctx):
        ctx.set(dut.enable, 1)
        for image in images:
            raw = image.tobytes()
            beats = [raw[k:k + 4] for k in range(0, len(raw), 4)]
            for number, beat in enumerate(beats):
                ctx.set(axis.tdata, int.from_bytes(beat.ljust(4, b"\0"), "little"))
                ctx.set(axis.tkeep, (1 << len(beat)) - 1)
                ctx.set(axis.tlast, number == len(beats) - 1)
                ctx.set(axis.tvalid, 1)
                await _wait(ctx, axis.tready, "tready")
                await ctx.tick()
                ctx.set(axis.tvalid, 0)
        await ctx.tick().repeat(20)

    _run(dut, source, background=[sink])
    expected = [(address, int(v)) for image in images for address, v in enumerate(image)]
    assert writes == expected
    assert done == [10, 14]


def test_pixel_stream_waits_while_disabled():
    dut = PixelStreamIn(pixel_bits=8, addr_bits=8)

    async def bench(ctx):
        ctx.set(dut.axis.tvalid, 1)
        ctx.set(dut.w_ready, 1)
        for _ in range(5):
            assert not ctx.get(dut.axis.tready)
            await ctx.tick()
        ctx.set(dut.enable, 1)
        assert ctx.get(dut.axis.tready)

    _run(dut, bench)


# --------------------------------------------------------------------------- memory window


def _window():
    return MemoryWindow(write_bits={0: 70, 3: 8}, read_bits={4: 40, 5: 32}, addr_bits=6,
                        w_data_bits=70, r_data_bits=40)


def test_window_writes_rows():
    dut = _window()
    rows = [(1 << 69) | 0x123456789ABCDEF01, 5, (1 << 70) - 1]
    commits = []

    async def monitor(ctx):
        async for _, _, en, sel, addr, data in ctx.tick().sample(
                dut.host.w_en, dut.host.w_sel, dut.host.w_addr, dut.host.w_data):
            if en:
                commits.append((sel, addr, data))

    async def bench(ctx):
        for strobe, value in ((dut.set_select, 0), (dut.set_addr, 10)):
            ctx.set(dut.value, value)
            ctx.set(strobe, 1)
            await ctx.tick()
            ctx.set(strobe, 0)
        for row in rows:
            for k in range(3):
                ctx.set(dut.value, (row >> (32 * k)) & 0xFFFF_FFFF)
                ctx.set(dut.write_word, 1)
                await ctx.tick()
                ctx.set(dut.write_word, 0)
                await ctx.tick()
        assert ctx.get(dut.addr) == 13
        # Pixels: one word per row, the low 8 bits.
        for strobe, value in ((dut.set_select, 3), (dut.set_addr, 0)):
            ctx.set(dut.value, value)
            ctx.set(strobe, 1)
            await ctx.tick()
            ctx.set(strobe, 0)
        ctx.set(dut.value, 0x1FF)
        ctx.set(dut.write_word, 1)
        await ctx.tick()
        ctx.set(dut.write_word, 0)
        await ctx.tick().repeat(2)

    _run(dut, bench, background=[monitor])
    expected = [(HostMemory.WEIGHTS, 10 + i, row) for i, row in enumerate(rows)]
    assert commits[:3] == expected
    assert commits[3][:2] == (HostMemory.PIXELS, 0) and commits[3][2] & 0xFF == 0xFF


def test_window_reads_rows_when_granted():
    dut = _window()
    rows = {2: 0xAB_1234_5678, 3: 0x12_0000_0001}
    words, errors = [], []

    async def memory(ctx):
        async for _, _, en, addr in ctx.tick().sample(dut.host.r_en, dut.host.r_addr):
            if en:
                ctx.set(dut.host.r_data, rows[addr])

    async def bench(ctx):
        for strobe, value in ((dut.set_select, 4), (dut.set_addr, 2)):
            ctx.set(dut.value, value)
            ctx.set(strobe, 1)
            await ctx.tick()
            ctx.set(strobe, 0)
        for number in range(4):
            ctx.set(dut.r_grant, number != 1)  # the read-out has the port for a while
            ctx.set(dut.read_word, 1)
            await ctx.tick()
            ctx.set(dut.read_word, 0)
            if number == 1:
                await ctx.tick().repeat(4)
                assert not ctx.get(dut.read_valid)
                ctx.set(dut.r_grant, 1)
            await _wait(ctx, dut.read_valid, "read_valid")
            words.append(ctx.get(dut.read_data))
            await ctx.tick()
        # Weights are write-only: the read answers 0 and flags an error.
        ctx.set(dut.value, 0)
        ctx.set(dut.set_select, 1)
        await ctx.tick()
        ctx.set(dut.set_select, 0)
        ctx.set(dut.read_word, 1)
        errors.append(ctx.get(dut.error))
        await ctx.tick()
        ctx.set(dut.read_word, 0)
        words.append((ctx.get(dut.read_valid), ctx.get(dut.read_data)))

    _run(dut, bench, background=[memory])
    assert words == [0x1234_5678, 0xAB, 0x0000_0001, 0x12, (1, 0)]
    assert errors == [1]


def test_window_wrong_table():
    with pytest.raises(TypeError, match=r"^write_bits must be a non-empty dict of memory "
                                        r"number -> row width \(1..8\), not \{0: 9\}$"):
        MemoryWindow(write_bits={0: 9}, read_bits={4: 8}, addr_bits=4, w_data_bits=8,
                     r_data_bits=8)


# --------------------------------------------------------------------------- read-out


@pytest.mark.parametrize("channels, positions", [(10, 1), (6, 3), (1, 1)])
def test_readout_packet_and_argmax(channels, positions):
    lanes, bits = 4, 16
    dut = Readout(lanes=lanes, membrane_bits=bits, addr_bits=6, data_bits=lanes * bits)
    rng = np.random.default_rng(channels)
    values = rng.integers(-3000, 3000, size=channels * positions)
    values[values.argmax() - 1 if values.argmax() else 0] = values.max()  # a tie: first wins
    groups = -(-channels // lanes)
    rows = np.zeros((groups * positions, lanes), dtype=np.int64)
    for neuron, value in enumerate(values):
        channel, position = divmod(neuron, positions)
        group, lane = divmod(channel, lanes)
        rows[group * positions + position, lane] = value
    packed = [sum((int(v) & 0xFFFF) << (bits * lane) for lane, v in enumerate(row))
              for row in rows]
    packet = []

    async def memory(ctx):
        async for _, _, en, sel, addr in ctx.tick().sample(dut.r_en, dut.r_sel, dut.r_addr):
            if en:
                assert sel == HostMemory.MEMBRANES
                ctx.set(dut.r_data, packed[addr])

    async def bench(ctx):
        ctx.set(dut.channels, channels)
        ctx.set(dut.positions, positions)
        ctx.set(dut.cycles, 12345)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for number in range(channels * positions + 2):
            ctx.set(dut.o_stream.ready, number % 2)  # back-pressure on every other word
            for _ in range(TIMEOUT):
                _, _, valid, ready, payload = await ctx.tick().sample(
                    dut.o_stream.valid, dut.o_stream.ready, dut.o_stream.payload)
                if valid and ready:
                    packet.append((payload.data, payload.last))
                    break
                ctx.set(dut.o_stream.ready, 1)
            else:
                raise StreamTimeout("read-out word missing")
        assert not ctx.get(dut.busy)
        assert ctx.get(dut.prediction) == int(np.argmax(values))

    _run(dut, bench, background=[memory])
    words = [(int(v) & 0xFFFF_FFFF, 0) for v in values]
    assert packet == words + [(int(np.argmax(values)), 0), (12345, 1)]


def test_readout_wrong_width():
    with pytest.raises(ValueError, match=r"^Data width must hold a row of 4 x 16 bits, "
                                         r"not 32$"):
        Readout(lanes=4, membrane_bits=16, addr_bits=4, data_bits=32)


# --------------------------------------------------------------------------- result stream


def test_result_stream_keeps_order_under_back_pressure():
    dut = ResultStreamOut()
    sent = [(0x100 + i, int(i == 6)) for i in range(7)]
    received = []

    async def source(ctx):
        for data, last in sent:
            await stream_put(ctx, dut.i_stream, {"data": data, "last": last}, timeout=TIMEOUT)

    async def sink(ctx):
        pattern = [1, 0, 0, 1, 1, 0]
        for step in range(TIMEOUT):
            ctx.set(dut.axis.tready, pattern[step % len(pattern)])
            _, _, valid, ready, data, last, keep = await ctx.tick().sample(
                dut.axis.tvalid, dut.axis.tready, dut.axis.tdata, dut.axis.tlast,
                dut.axis.tkeep)
            if valid and ready:
                assert keep == 0b1111
                received.append((data, last))
                if last:
                    return
        raise StreamTimeout("packet not received")

    run_sim(dut, source, sink)
    assert received == sent


def test_components_elaborate():
    for dut in (AXI4LiteRegisters(addr_width=12), ResultStreamOut(), _window(),
                PixelStreamIn(pixel_bits=8, addr_bits=4),
                Readout(lanes=2, membrane_bits=8, addr_bits=4, data_bits=16)):
        Fragment.get(dut, None)


def test_regmap_memory_numbers_match_the_rtl():
    # boards/regmap.py copies HostMemory as plain integers so the driver needs no Amaranth;
    # this keeps the copy honest.
    from spikeforge.boards.regmap import Memory

    assert {member.name.lower(): member.value for member in HostMemory} == \
        {name: getattr(Memory, name.upper()) for name in Memory.NAMES}
    assert list(Memory.NAMES) == [member.name.lower() for member in HostMemory]


def test_counter_registers_show_every_top_counter_in_order():
    # The register map names its own registers, but the members behind them are Top's, and
    # the read-out order (CYCLES at 0x40, then one word each) follows Top's list.
    from spikeforge.boards.regmap import COUNTERS, REGISTERS
    from spikeforge.rtl.top import COUNTERS as TOP_COUNTERS
    assert tuple(COUNTERS.values()) == TOP_COUNTERS
    addresses = [REGISTERS[register] for register in COUNTERS]
    assert addresses == list(range(REGISTERS["CYCLES"], REGISTERS["CYCLES"] + 4 * len(COUNTERS), 4))
