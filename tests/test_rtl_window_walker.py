# amaranth: UnusedElaboratable=no
"""WindowWalker: every in-range tap of every output position, in order, one per issue; the
first tap three cycles after ``start``; products by multiplier or by shifted adds alike."""

import itertools

import pytest

from rtl_models import run_sim
from spikeforge.rtl.window_walker import WindowWalker, axis_taps

PARAMS = dict(addr_bits=7, pixel_addr_bits=9, weight_addr_bits=9, coord_bits=4,
              channel_bits=3)


def conv(in_hw, kernel, stride, pad, base=0):
    (in_h, in_w), (kh, kw), (sh, sw), (ph, pw) = in_hw, kernel, stride, pad
    return dict(kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw,
                out_h=(in_h + 2 * ph - kh) // sh + 1, out_w=(in_w + 2 * pw - kw) // sw + 1,
                in_h=in_h, in_w=in_w, weight_base=base, linear=0)


def linear(in_hw, base=0):
    return dict(kernel_h=0, kernel_w=0, stride_h=1, stride_w=1, pad_h=0, pad_w=0, out_h=0,
                out_w=0, in_h=in_hw[0], in_w=in_hw[1], weight_base=base, linear=1)


def expected(g, channels):
    """(position, taps, first, last, final, pixel, weight) of every issued tap, by loops."""
    if g["linear"]:
        g = conv((g["in_h"], g["in_w"]), (g["in_h"], g["in_w"]), (1, 1), (0, 0),
                 g["weight_base"])
    positions = list(itertools.product(range(g["out_h"]), range(g["out_w"])))
    rows = []
    for p, (oy, ox) in enumerate(positions):
        final = p == len(positions) - 1
        taps = [(c * g["in_h"] * g["in_w"] + iy * g["in_w"] + ix,
                 g["weight_base"] + (c * g["kernel_h"] + ky) * g["kernel_w"] + kx)
                for c in range(channels) for ky in range(g["kernel_h"])
                for kx in range(g["kernel_w"])
                for iy, ix in [(oy * g["stride_h"] - g["pad_h"] + ky,
                                ox * g["stride_w"] - g["pad_w"] + kx)]
                if 0 <= iy < g["in_h"] and 0 <= ix < g["in_w"]]
        if not taps:
            rows.append((p, 0, 1, 1, final, None, None))
        for t, (pixel, weight) in enumerate(taps):
            rows.append((p, 1, int(t == 0), int(t == len(taps) - 1), final, pixel, weight))
    return rows


def walk(geometry, channels, *, shift_add=False, pattern=(1,)):
    """The issued taps and the cycle (``start`` = 0) of each; ``pattern`` drives ``issue``."""
    dut = WindowWalker(shift_add=shift_add, **PARAMS)
    issued = []

    async def testbench(ctx):
        ctx.set(dut.geometry, geometry)
        ctx.set(dut.in_channels, channels)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        issue = itertools.cycle(pattern)
        for cycle in range(1, 2000):
            go = next(issue)
            ctx.set(dut.issue, go)
            if ctx.get(dut.valid) and go:
                taps = ctx.get(dut.taps)
                row = (ctx.get(dut.position), taps, ctx.get(dut.first), ctx.get(dut.last),
                       ctx.get(dut.final), ctx.get(dut.pixel_addr) if taps else None,
                       ctx.get(dut.weight_addr) if taps else None)
                issued.append((cycle, row))
                if row[3] and row[4]:
                    return
            await ctx.tick()
        raise AssertionError("the walk did not end")

    run_sim(dut, testbench)
    return issued


CASES = [
    pytest.param(conv((5, 5), (3, 3), (1, 1), (1, 1), base=7), 2, id="conv3x3-pad1"),
    pytest.param(conv((6, 5), (2, 3), (2, 1), (0, 2)), 1, id="conv-stride2-pad2"),
    pytest.param(conv((4, 4), (2, 2), (3, 3), (3, 3), base=3), 3, id="empty-windows"),
    pytest.param(linear((2, 3), base=5), 3, id="linear"),
    pytest.param(conv((3, 3), (3, 3), (1, 1), (1, 1)), 0, id="no-channels"),
]


@pytest.mark.parametrize("shift_add", [False, True])
@pytest.mark.parametrize("geometry, channels", CASES)
def test_sim_walk(geometry, channels, shift_add):
    issued = walk(geometry, channels, shift_add=shift_add)
    assert [row for _, row in issued] == expected(geometry, channels)
    # The first tap three cycles after start, then one a cycle.
    assert [cycle for cycle, _ in issued] == list(range(3, 3 + len(issued)))


def test_sim_walk_stalls():
    """With ``issue`` low on some cycles the same taps come out, each held until issued."""
    geometry = conv((5, 4), (3, 2), (1, 2), (1, 1), base=2)
    issued = walk(geometry, 2, shift_add=True, pattern=(1, 0, 0, 1, 1, 0))
    assert [row for _, row in issued] == expected(geometry, 2)


def test_axis_taps():
    # 5 rows, kernel 3, stride 1, padding 1: the border rows lose one kernel row.
    assert axis_taps(5, 3, 1, 1, 5) == [2, 3, 3, 3, 2]
    # Stride 3, padding 2 on 4 rows: windows -2..0, 1..3, 4..6 (the last one is empty).
    assert axis_taps(3, 3, 3, 2, 4) == [1, 3, 0]


def test_init():
    dut = WindowWalker(shift_add=True, **PARAMS)
    assert (dut.addr_bits, dut.pixel_addr_bits, dut.weight_addr_bits, dut.coord_bits,
            dut.channel_bits, dut.shift_add) == (7, 9, 9, 4, 3, True)
    assert WindowWalker(**PARAMS).shift_add is False
    assert set(dut.signature.members.keys()) == {
        "geometry", "in_channels", "start", "issue", "valid", "taps", "first", "last", "final",
        "position", "pixel_addr", "weight_addr"}


@pytest.mark.parametrize("param, message", [
    ("addr_bits", "Address width"), ("pixel_addr_bits", "Pixel address width"),
    ("weight_addr_bits", "Weight address width"), ("coord_bits", "Coordinate width"),
    ("channel_bits", "Channel width")])
@pytest.mark.parametrize("value", [0, 2.0, True])
def test_init_wrong_width(param, message, value):
    with pytest.raises(TypeError, match=rf"^{message} must be a positive integer, not {value!r}$"):
        WindowWalker(**{**PARAMS, param: value})


@pytest.mark.parametrize("value", [1, None, "yes"])
def test_init_wrong_shift_add(value):
    with pytest.raises(TypeError, match=rf"^Shift-add choice must be a bool, not {value!r}$"):
        WindowWalker(shift_add=value, **PARAMS)
