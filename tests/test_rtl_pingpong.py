# amaranth: UnusedElaboratable=no
"""PingPong: fill/drain through swaps, the exclusion assertions, and the busy counters."""

import numpy as np
import pytest

from rtl_models import read_rows, row_values, run_sim, vcd_file
from spikeforge.rtl.pingpong import PingPong

PARAMS = {"addr_bits": 4, "psum_bits": 12, "lanes": 4, "depth": 16}


class SharedBankPingPong(PingPong):
    """A deliberately broken controller: both clients are routed to the fill bank."""

    def _routing(self, m, select):
        return select, select


def idle(ctx, dut):
    for client in (dut.fill, dut.drain):
        ctx.set(client.r_en, 0)
        ctx.set(client.w_en, 0)
    for strobe in (dut.swap, dut.fill_busy, dut.drain_busy, dut.clear):
        ctx.set(strobe, 0)


def test_init():
    dut = PingPong(**PARAMS)
    assert (dut.addr_bits, dut.psum_bits, dut.lanes, dut.depth, dut.counter_bits) == \
        (4, 12, 4, 16, 32)
    assert [bank.depth for bank in dut.banks] == [16, 16]
    assert set(dut.signature.members.keys()) == {
        "fill", "drain", "swap", "fill_busy", "drain_busy", "clear", "fill_bank", "drain_bank",
        "fill_busy_cycles", "drain_busy_cycles", "overlap_cycles"}


@pytest.mark.parametrize("param, message", [
    ("addr_bits", "Address width"), ("psum_bits", "Partial-sum width"), ("lanes", "Lane count"),
    ("depth", "Depth"), ("counter_bits", "Counter width")])
@pytest.mark.parametrize("value", [0, "4"])
def test_init_wrong_param(param, message, value):
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not {value!r}$"):
        PingPong(**{**PARAMS, param: value})


def test_init_wrong_depth():
    with pytest.raises(ValueError, match=r"^Depth must be at most 2 \*\* addr_bits \(16\), "
                                         r"not 17$"):
        PingPong(**{**PARAMS, "depth": 17})


@pytest.mark.parametrize("lanes", [4, 16, 64])
def test_sim_fill_then_drain(lanes, tmp_path):
    """Phase ``k`` fills random rows while the drain reads (and clears) phase ``k - 1``'s.

    Both clients work in the same cycles, so the busy counters see a real overlap.
    """
    depth, phases = 16, 4
    rng = np.random.default_rng(lanes)
    low, high = -(1 << 11), (1 << 11) - 1
    data = rng.integers(low, high, size=(phases, depth, lanes), endpoint=True)
    dut = PingPong(**{**PARAMS, "lanes": lanes})
    counts = {"fill": 0, "drain": 0, "overlap": 0}

    async def testbench(ctx):
        idle(ctx, dut)
        for phase in range(phases):
            fill_bank = ctx.get(dut.fill_bank)
            assert fill_bank == 1 - ctx.get(dut.drain_bank) == phase % 2
            draining = phase > 0
            # Cycle i: fill writes row i and reads row i - 1 back; drain reads row i and clears
            # row i - 1 (read the cycle before). One extra cycle lets the last reads return.
            for i in range(depth + 1):
                writing = i < depth
                ctx.set(dut.fill_busy, 1)
                ctx.set(dut.drain_busy, draining)
                ctx.set(dut.fill.w_en, writing)
                ctx.set(dut.fill.w_addr, i % depth)
                ctx.set(dut.fill.w_data, data[phase, i % depth].tolist())
                ctx.set(dut.fill.r_en, i > 0)
                ctx.set(dut.fill.r_addr, i - 1)
                ctx.set(dut.drain.r_en, draining and writing)
                ctx.set(dut.drain.r_addr, i % depth)
                ctx.set(dut.drain.w_en, draining and i > 0)
                ctx.set(dut.drain.w_addr, i - 1)
                ctx.set(dut.drain.w_data, [0] * lanes)
                counts["fill"] += 1
                counts["drain"] += draining
                counts["overlap"] += draining
                _, _, fill_row, drain_row = await ctx.tick().sample(dut.fill.r_data,
                                                                    dut.drain.r_data)
                # The reads issued last cycle: fill's of row i - 2, drain's of row i - 1.
                if i > 1:
                    assert row_values(fill_row, lanes) == data[phase, i - 2].tolist()
                if draining and i > 0:
                    assert row_values(drain_row, lanes) == data[phase - 1, i - 1].tolist()
            idle(ctx, dut)
            await ctx.tick()  # one idle cycle: counted by nobody
            assert read_rows(ctx, dut.banks[fill_bank], lanes) == data[phase].tolist()
            if draining:
                assert not np.array(read_rows(ctx, dut.banks[1 - fill_bank], lanes)).any()
            ctx.set(dut.swap, 1)
            await ctx.tick()
            ctx.set(dut.swap, 0)
        assert ctx.get(dut.fill_busy_cycles) == counts["fill"] == phases * (depth + 1)
        assert ctx.get(dut.drain_busy_cycles) == counts["drain"]
        assert ctx.get(dut.overlap_cycles) == counts["overlap"] == (phases - 1) * (depth + 1)

    run_sim(dut, testbench, vcd=vcd_file(tmp_path, f"fill_drain_{lanes}"))


def test_sim_read_data_follows_the_bank_across_a_swap():
    """A read issued in the swap cycle returns the row of the bank it was issued to."""
    dut = PingPong(**PARAMS)
    dut.banks[0].init[3] = [1, 2, 3, 4]
    dut.banks[1].init[3] = [-5, -6, -7, -8]

    async def testbench(ctx):
        idle(ctx, dut)
        # Fill reads bank 0 and then owns bank 1; after that swap, drain reads bank 0 and
        # then owns bank 1. Both must get bank 0's row, not the row of the bank owned now.
        for client in (dut.fill, dut.drain):
            ctx.set(client.r_en, 1)
            ctx.set(client.r_addr, 3)
            ctx.set(dut.swap, 1)
            await ctx.tick()
            ctx.set(client.r_en, 0)
            ctx.set(dut.swap, 0)
            _, _, row, owned = await ctx.tick().sample(client.r_data, dut.fill_bank)
            assert owned == (client is dut.fill)
            assert row_values(row, 4) == [1, 2, 3, 4]

    run_sim(dut, testbench)


@pytest.mark.parametrize("fill_op, drain_op", [("r_en", "r_en"), ("w_en", "r_en"),
                                               ("r_en", "w_en"), ("w_en", "w_en")])
def test_sim_shared_bank_fails_the_run(fill_op, drain_op):
    """The exclusion assertion fires when both clients reach one bank in one cycle."""
    dut = SharedBankPingPong(**PARAMS)

    async def testbench(ctx):
        idle(ctx, dut)
        for fill_on, drain_on in ((1, 0), (0, 1), (0, 0), (1, 1)):
            ctx.set(getattr(dut.fill, fill_op), fill_on)
            ctx.set(getattr(dut.drain, drain_op), drain_on)
            await ctx.tick()
        idle(ctx, dut)
        await ctx.tick()

    with pytest.raises(AssertionError,
                       match=r"^Assertion violated: both ping-pong clients access bank 0 "
                             r"in one cycle$"):
        run_sim(dut, testbench)


def test_sim_shared_bank_without_simultaneous_access_passes():
    """The assertion is about one cycle: alternating accesses to one bank are fine."""
    dut = SharedBankPingPong(**PARAMS)

    async def testbench(ctx):
        idle(ctx, dut)
        for k in range(6):
            ctx.set(dut.fill.w_en, k % 2)
            ctx.set(dut.drain.r_en, 1 - k % 2)
            await ctx.tick()

    run_sim(dut, testbench)


@pytest.mark.parametrize("busy", ["fill_busy", "drain_busy"])
def test_sim_swap_while_busy_fails_the_run(busy):
    dut = PingPong(**PARAMS)

    async def testbench(ctx):
        idle(ctx, dut)
        ctx.set(dut.swap, 1)  # a swap with both sides idle is fine
        await ctx.tick()
        ctx.set(getattr(dut, busy), 1)
        await ctx.tick()
        await ctx.tick()

    with pytest.raises(AssertionError,
                       match=r"^Assertion violated: ping-pong swap while a client is busy$"):
        run_sim(dut, testbench)


def test_sim_busy_counters():
    """Random busy patterns: the counters equal the counts of the driven cycles; clear works."""
    rng = np.random.default_rng(1)
    fill = rng.random(300) < 0.6
    drain = rng.random(300) < 0.5
    dut = PingPong(**{**PARAMS, "counter_bits": 8})  # 8 bits: the counters wrap

    async def testbench(ctx):
        idle(ctx, dut)
        for k, (f, d) in enumerate(zip(fill, drain)):
            ctx.set(dut.fill_busy, int(f))
            ctx.set(dut.drain_busy, int(d))
            ctx.set(dut.clear, k == 40)
            await ctx.tick()
        idle(ctx, dut)
        await ctx.tick()
        # The clear cycle itself counts nothing: counting restarts on the cycle after it.
        expected = (fill[41:].sum(), drain[41:].sum(), (fill & drain)[41:].sum())
        assert expected[2] > 0
        got = (ctx.get(dut.fill_busy_cycles), ctx.get(dut.drain_busy_cycles),
               ctx.get(dut.overlap_cycles))
        assert got == tuple(int(e) % 256 for e in expected)

    run_sim(dut, testbench)
