# amaranth: UnusedElaboratable=no
"""The top level's host port (writes while idle, reads one cycle later), the fault parameter's
validation and the row helpers of ``rtl/host_port.py``."""

import pytest

from rtl_models import run_sim
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.host_port import HostMemory, MembraneFault, unpack_rows
from spikeforge.rtl.top import Top

SMALL = AcceleratorConfig(pes=4, max_positions=64, weight_depth=256, spike_memory_bits=2048,
                          max_in_channels=32, max_out_channels=32, max_feature_size=16)


def _pack(values, bits):
    """Lane ``i`` in bits ``[bits * i, bits * (i + 1))``, two's complement (written here, not
    taken from the code under test)."""
    word = 0
    for lane, value in enumerate(values):
        word |= (value & ((1 << bits) - 1)) << (bits * lane)
    return word


def _run(top, testbench):
    run_sim(top, testbench)


def test_host_writes():
    top = Top(config=SMALL)
    row, bias = [-128, 127, -1, 5], [-(1 << 23), (1 << 23) - 1, 0, -7]

    async def testbench(ctx):
        host = top.host
        for which, address, word in ((HostMemory.WEIGHTS, 3, _pack(row, 8)),
                                     (HostMemory.BIASES, 1, _pack(bias, 24)),
                                     (HostMemory.PIXELS, 5, 200)):
            ctx.set(host.w_sel, which)
            ctx.set(host.w_addr, address)
            ctx.set(host.w_data, word)
            ctx.set(host.w_en, 1)
            await ctx.tick()
        ctx.set(host.w_en, 0)
        await ctx.tick()
        assert [int(v) for v in ctx.get(top.weights[3])] == row
        assert [int(v) for v in ctx.get(top.biases[1])] == bias
        assert ctx.get(top.pixels[5]) == 200
        assert [int(v) for v in ctx.get(top.weights[2])] == [0, 0, 0, 0]

    _run(top, testbench)


def test_host_reads_one_cycle_later():
    top = Top(config=SMALL)
    rows = [[7 * r - 20, r, -r, 1000 + r] for r in range(6)]
    top.membranes.init = rows
    top.spike_counts.init = [11, 22, 33]

    async def testbench(ctx):
        host = top.host
        for which, address, want in ((HostMemory.MEMBRANES, 4, _pack(rows[4], 16)),
                                     (HostMemory.SPIKE_COUNTS, 2, 33),
                                     (HostMemory.MEMBRANES, 0, _pack(rows[0], 16))):
            ctx.set(host.r_sel, which)
            ctx.set(host.r_addr, address)
            ctx.set(host.r_en, 1)
            before = ctx.get(host.r_data)
            await ctx.tick()
            ctx.set(host.r_en, 0)
            assert before != want  # not in the cycle of the request
            assert ctx.get(host.r_data) == want
            await ctx.tick()
            assert ctx.get(host.r_data) == want  # holds until the next read

    _run(top, testbench)


def test_host_writes_ignored_while_busy():
    top = Top(config=SMALL)  # an all-zero descriptor table keeps the sequencer busy

    async def testbench(ctx):
        ctx.set(top.start, 1)
        await ctx.tick()
        ctx.set(top.start, 0)
        await ctx.tick()
        assert ctx.get(top.busy)
        host = top.host
        ctx.set(host.w_sel, HostMemory.WEIGHTS)
        ctx.set(host.w_addr, 0)
        ctx.set(host.w_data, _pack([1, 2, 3, 4], 8))
        ctx.set(host.w_en, 1)
        await ctx.tick().repeat(3)
        assert [int(v) for v in ctx.get(top.weights[0])] == [0, 0, 0, 0]

    _run(top, testbench)


def test_fault_wrong_type():
    with pytest.raises(TypeError, match=r"^Fault must be None or a MembraneFault, not "
                                        r"\(0, 1, 0, 0, 3\)$"):
        Top(config=SMALL, fault=(0, 1, 0, 0, 3))


def test_fault_bit_too_high():
    with pytest.raises(ValueError, match=r"^Fault bit must be below the membrane width 16, "
                                         r"not 16$"):
        Top(config=SMALL, fault=MembraneFault(layer=0, timestep=1, channel=0, position=0,
                                              bit=16))


@pytest.mark.parametrize("field, value, kind", [
    ("layer", -1, "a non-negative integer"), ("timestep", 0, "a positive integer"),
    ("channel", 1.5, "a non-negative integer"), ("bit", True, "a non-negative integer")])
def test_fault_fields(field, value, kind):
    fields = {"layer": 0, "timestep": 1, "channel": 0, "position": 0, "bit": 0, field: value}
    with pytest.raises(TypeError, match=rf"^Fault {field} must be {kind}, not {value!r}$"):
        MembraneFault(**fields)


def test_unpack_rows():
    words = [_pack([-1, 2, -32768, 32767], 16), 0]
    assert unpack_rows(words, bits=16, lanes=4).tolist() == [[-1, 2, -32768, 32767],
                                                             [0, 0, 0, 0]]
