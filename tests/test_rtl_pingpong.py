# amaranth: UnusedElaboratable=no
"""PingPong: fill/drain through swaps, the exclusion assertions, and the busy counters."""

import numpy as np
import pytest

from rtl_models import read_rows, row_values, run_sim, vcd_file
from spikeforge.rtl.interfaces import RowPortSignature, row_layout
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


# Sliced banks (``slots > 1``): the fill port addresses every lane slice on its own.

SLICED = {"addr_bits": 3, "psum_bits": 12, "lanes": 8, "depth": 8}


def slice_rows(ctx, dut, bank):
    """Bank ``bank`` as an array ``[slice, row, lane]`` read from ``dut.bank_slices``."""
    lanes = dut.lanes // dut.slots
    return np.array([read_rows(ctx, mem, lanes) for mem in dut.bank_slices[bank]])


@pytest.mark.parametrize("slots", [2, 4])
def test_init_slots(slots):
    dut = PingPong(**SLICED, slots=slots)
    assert dut.slots == slots
    assert dut.banks == dut.bank_slices
    assert [len(bank) for bank in dut.banks] == [slots, slots]
    for bank in dut.bank_slices:
        for mem in bank:
            assert mem.depth == 8
            assert mem.shape == row_layout(12, 8 // slots)
    members = dut.signature.members
    assert members["fill"].signature.flip().members == RowPortSignature(
        addr_bits=3, bits=12, lanes=8, slots=slots).members
    assert members["drain"].signature.flip().members == RowPortSignature(
        addr_bits=3, bits=12, lanes=8).members


def test_init_slots_default():
    dut = PingPong(**PARAMS)
    assert dut.slots == 1
    assert dut.bank_slices == ((dut.banks[0],), (dut.banks[1],))
    assert dut.banks[0].shape == row_layout(12, 4)


@pytest.mark.parametrize("value", [0, "2", True])
def test_init_wrong_slots_type(value):
    with pytest.raises(TypeError, match=rf"^Slot count must be a positive integer, not "
                                        rf"{value!r}$"):
        PingPong(**PARAMS, slots=value)


@pytest.mark.parametrize("value", [3, 8])
def test_init_wrong_slots_value(value):
    with pytest.raises(ValueError, match=rf"^Slot count must be 1, 2 or 4, not {value}$"):
        PingPong(**{**PARAMS, "lanes": 16}, slots=value)


@pytest.mark.parametrize("lanes, slots", [(6, 4), (5, 2), (2, 4)])
def test_init_lanes_not_a_multiple_of_slots(lanes, slots):
    with pytest.raises(ValueError, match=rf"^Lane count must be a multiple of the slot count "
                                         rf"\({slots}\), not {lanes}$"):
        PingPong(**{**PARAMS, "lanes": lanes}, slots=slots)


@pytest.mark.parametrize("slots", [1, 2, 4])
def test_sim_sliced_random_traffic(slots):
    """Random per-slice fill traffic, drain traffic and swaps against a NumPy model.

    The model holds ``slots`` slice memories per bank; a read returns the row as it was
    before the edge (non-transparent), from the bank its client owned when it was issued.
    Reads are checked the cycle after they were issued; every slice's rows are checked at
    each swap and at the end, and the busy counters at the end. The traffic must have hit
    the interesting cases: reads issued in a swap cycle, and a read of a row on the edge that
    writes it with other data.
    """
    cycles, depth, lanes = 500, SLICED["depth"], SLICED["lanes"]
    part = lanes // slots
    rng = np.random.default_rng(100 + slots)
    low, high = -(1 << 11), (1 << 11) - 1
    dut = PingPong(**SLICED, slots=slots)
    model = np.zeros((2, slots, depth, part), dtype=np.int64)

    def row(bank, addrs):
        """The whole row of ``bank`` made of slice ``j``'s row ``addrs[j]``."""
        return np.concatenate([model[bank, j, addrs[j]] for j in range(slots)])

    async def testbench(ctx):
        idle(ctx, dut)
        select = 0
        counts = np.zeros(3, dtype=np.int64)
        expect_fill = [None] * slots  # per slice: lanes expected next cycle, or None
        expect_drain = None
        seen = {"fill_swap_read": 0, "drain_swap_read": 0, "read_under_write": 0}
        for cycle in range(cycles):
            swap = rng.random() < 0.08
            busy = (0, 0) if swap else tuple(int(b) for b in rng.random(2) < 0.6)
            fill_r_en = rng.random(slots) < 0.5
            fill_w_en = rng.random(slots) < 0.5
            if rng.random() < 0.1:  # some cycles with every slice idle
                fill_r_en[:] = fill_w_en[:] = False
            fill_r_addr = rng.integers(depth, size=slots)
            fill_w_addr = rng.integers(depth, size=slots)
            fill_w_data = rng.integers(low, high, size=lanes, endpoint=True)
            drain_r_en, drain_w_en = rng.random(2) < 0.4
            drain_r_addr, drain_w_addr = rng.integers(depth, size=2)
            drain_w_data = rng.integers(low, high, size=lanes, endpoint=True)
            if slots == 1:
                ctx.set(dut.fill.r_en, int(fill_r_en[0]))
                ctx.set(dut.fill.w_en, int(fill_w_en[0]))
                ctx.set(dut.fill.r_addr, int(fill_r_addr[0]))
                ctx.set(dut.fill.w_addr, int(fill_w_addr[0]))
            else:
                ctx.set(dut.fill.r_en, int(np.dot(fill_r_en, 1 << np.arange(slots))))
                ctx.set(dut.fill.w_en, int(np.dot(fill_w_en, 1 << np.arange(slots))))
                ctx.set(dut.fill.r_addr, fill_r_addr.tolist())
                ctx.set(dut.fill.w_addr, fill_w_addr.tolist())
            ctx.set(dut.fill.w_data, fill_w_data.tolist())
            ctx.set(dut.drain.r_en, int(drain_r_en))
            ctx.set(dut.drain.w_en, int(drain_w_en))
            ctx.set(dut.drain.r_addr, int(drain_r_addr))
            ctx.set(dut.drain.w_addr, int(drain_w_addr))
            ctx.set(dut.drain.w_data, drain_w_data.tolist())
            ctx.set(dut.swap, int(swap))
            ctx.set(dut.fill_busy, busy[0])
            ctx.set(dut.drain_busy, busy[1])
            counts += (busy[0], busy[1], busy[0] & busy[1])
            assert (ctx.get(dut.fill_bank), ctx.get(dut.drain_bank)) == (select, 1 - select)

            # The model's edge: reads see the rows before this edge's writes.
            fill_bank, drain_bank = select, 1 - select
            fill_row = row(fill_bank, fill_r_addr)
            for j in range(slots):
                if fill_r_en[j]:
                    expect_fill[j] = fill_row[j * part:(j + 1) * part].tolist()
            if drain_r_en:
                expect_drain = row(drain_bank, [drain_r_addr] * slots).tolist()
            seen["fill_swap_read"] += swap and fill_r_en.any()
            seen["drain_swap_read"] += swap and drain_r_en
            for j in range(slots):
                seen["read_under_write"] += bool(
                    fill_r_en[j] and fill_w_en[j] and fill_r_addr[j] == fill_w_addr[j] and
                    (model[fill_bank, j, fill_w_addr[j]]
                     != fill_w_data[j * part:(j + 1) * part]).any())
                if fill_w_en[j]:
                    model[fill_bank, j, fill_w_addr[j]] = fill_w_data[j * part:(j + 1) * part]
                if drain_w_en:
                    model[drain_bank, j, drain_w_addr] = drain_w_data[j * part:(j + 1) * part]
            select ^= swap

            await ctx.tick()
            got_fill = row_values(ctx.get(dut.fill.r_data), lanes)
            for j in range(slots):
                if fill_r_en[j]:
                    assert got_fill[j * part:(j + 1) * part] == expect_fill[j], (cycle, j)
            if drain_r_en:
                assert row_values(ctx.get(dut.drain.r_data), lanes) == expect_drain, cycle
            if swap or cycle == cycles - 1:
                for bank in range(2):
                    assert (slice_rows(ctx, dut, bank) == model[bank]).all(), (cycle, bank)
        got = (ctx.get(dut.fill_busy_cycles), ctx.get(dut.drain_busy_cycles),
               ctx.get(dut.overlap_cycles))
        assert got == tuple(int(c) for c in counts)
        assert counts[2] > 0
        assert all(seen.values()), seen

    run_sim(dut, testbench)


@pytest.mark.parametrize("slots", [2, 4])
def test_sim_sliced_drain_sees_rows_written_by_slice(slots):
    """Fill writes each row slice by slice, every slice at its own row in each cycle;
    after a swap the drain reads the concatenated rows, then clears them (all slices)."""
    depth, lanes = SLICED["depth"], SLICED["lanes"]
    part = lanes // slots
    rows = np.arange(1, slots * lanes + 1).reshape(slots, lanes) * np.tile([1, -1], lanes // 2)
    dut = PingPong(**SLICED, slots=slots)
    dut.banks[1][slots - 1].init[0] = [7] * part  # the drain bank's old contents: cleared

    async def testbench(ctx):
        idle(ctx, dut)
        # Cycle k: slice j writes its lanes of row (j + k) % slots at that row.
        for k in range(slots):
            addrs = [(j + k) % slots for j in range(slots)]
            data = np.concatenate([rows[a, j * part:(j + 1) * part]
                                   for j, a in enumerate(addrs)])
            ctx.set(dut.fill.w_en, (1 << slots) - 1)
            ctx.set(dut.fill.w_addr, addrs)
            ctx.set(dut.fill.w_data, data.tolist())
            await ctx.tick()
        idle(ctx, dut)
        assert (slice_rows(ctx, dut, 0)[:, :slots] ==
                rows.reshape(slots, slots, part).transpose(1, 0, 2)).all()
        ctx.set(dut.swap, 1)
        await ctx.tick()
        ctx.set(dut.swap, 0)
        # Drain reads row r and clears it in the same cycle (non-transparent: old row back).
        for r in range(slots):
            ctx.set(dut.drain.r_en, 1)
            ctx.set(dut.drain.r_addr, r)
            ctx.set(dut.drain.w_en, 1)
            ctx.set(dut.drain.w_addr, r)
            ctx.set(dut.drain.w_data, [0] * lanes)
            await ctx.tick()
            assert row_values(ctx.get(dut.drain.r_data), lanes) == rows[r].tolist()
        idle(ctx, dut)
        await ctx.tick()
        assert not slice_rows(ctx, dut, 0).any()
        # The other bank (fill's now) kept its contents: only its last slice's row 0 is set.
        expected = np.zeros((slots, depth, part), dtype=np.int64)
        expected[slots - 1, 0] = 7
        assert (slice_rows(ctx, dut, 1) == expected).all()

    run_sim(dut, testbench)


@pytest.mark.parametrize("slots", [2, 4])
@pytest.mark.parametrize("fill_op, drain_op", [("r_en", "w_en"), ("w_en", "r_en")])
def test_sim_sliced_shared_bank_fails_the_run(slots, fill_op, drain_op):
    """One enabled fill slice (the last) is enough for the exclusion assertion to fire."""
    dut = SharedBankPingPong(**SLICED, slots=slots)

    async def testbench(ctx):
        idle(ctx, dut)
        for fill_on, drain_on in ((1, 0), (0, 1), (0, 0), (1, 1)):
            ctx.set(getattr(dut.fill, fill_op), fill_on << (slots - 1))
            ctx.set(getattr(dut.drain, drain_op), drain_on)
            await ctx.tick()
        idle(ctx, dut)
        await ctx.tick()

    with pytest.raises(AssertionError,
                       match=r"^Assertion violated: both ping-pong clients access bank 0 "
                             r"in one cycle$"):
        run_sim(dut, testbench)


def test_sim_sliced_swap_while_busy_fails_the_run():
    dut = PingPong(**SLICED, slots=4)

    async def testbench(ctx):
        idle(ctx, dut)
        ctx.set(dut.fill_busy, 1)
        ctx.set(dut.swap, 1)
        await ctx.tick()
        await ctx.tick()

    with pytest.raises(AssertionError,
                       match=r"^Assertion violated: ping-pong swap while a client is busy$"):
        run_sim(dut, testbench)
