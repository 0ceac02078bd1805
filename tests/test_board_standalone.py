# amaranth: UnusedElaboratable=no
"""The standalone demo in the Amaranth simulator: press the button, wait, read the LEDs."""

import pytest
from amaranth.sim import Simulator

from board_cases import SMALL_BOARD, SMALL_SIZES, digits, expectations
from spikeforge.boards.standalone import Standalone
from spikeforge.sim.streams import StreamTimeout

DEBOUNCE = 8
RUN_CYCLES = 40_000  # far more than one digits image on 4 PEs (about 10,000 cycles)


async def _press(ctx, dut, cycles):
    ctx.set(dut.start, 1)
    await ctx.tick().repeat(cycles)
    ctx.set(dut.start, 0)


async def _run_image(ctx, dut, select):
    """Press for a bouncy moment (too short), then properly; wait for the result."""
    ctx.set(dut.select, select)
    await _press(ctx, dut, DEBOUNCE // 2)
    await ctx.tick().repeat(DEBOUNCE)
    assert not ctx.get(dut.busy_led), "a press shorter than the debounce time started a run"
    await _press(ctx, dut, DEBOUNCE + 4)
    for _ in range(RUN_CYCLES):
        if ctx.get(dut.busy_led):
            break
        await ctx.tick()
    else:
        raise StreamTimeout("the press started no run")
    for _ in range(RUN_CYCLES):
        if not ctx.get(dut.busy_led):
            break
        await ctx.tick()
    else:
        raise StreamTimeout(f"no result within {RUN_CYCLES} cycles")
    await ctx.tick()
    return ctx.get(dut.leds), ctx.get(dut.pass_led), ctx.get(dut.fail_led)


def _simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(bench)
    sim.run()


def test_press_wait_read_leds():
    network, images = digits(2, first=2)
    predictions = expectations(network, images)["predictions"]
    dut = Standalone(network=network, images=images, config=SMALL_BOARD, sizes=SMALL_SIZES,
                     debounce_cycles=DEBOUNCE)
    shown = []

    async def bench(ctx):
        assert (ctx.get(dut.pass_led), ctx.get(dut.fail_led)) == (0, 0)  # nothing run yet
        for select in (1, 0):
            shown.append(await _run_image(ctx, dut, select))

    _simulate(dut, bench)
    assert shown == [(predictions[1], 1, 0), (predictions[0], 1, 0)]


def test_wrong_golden_prediction_lights_fail():
    network, images = digits(1)
    prediction = expectations(network, images)["predictions"][0]
    dut = Standalone(network=network, images=images, config=SMALL_BOARD, sizes=SMALL_SIZES,
                     debounce_cycles=DEBOUNCE, expected=[(prediction + 1) % 10])
    shown = []

    async def bench(ctx):
        shown.append(await _run_image(ctx, dut, 3))  # select wraps to the only image

    _simulate(dut, bench)
    assert shown == [(prediction, 0, 1)]


def test_init_checks():
    network, images = digits(5)
    with pytest.raises(ValueError, match=r"^The standalone top holds 1 to 4 images, not 5$"):
        Standalone(network=network, images=images, config=SMALL_BOARD, sizes=SMALL_SIZES)
    with pytest.raises(ValueError, match=r"^Images must have the network's input shape "
                                         r"\(1, 8, 8\), not \(8, 8\)$"):
        Standalone(network=network, images=images[:2, 0], config=SMALL_BOARD,
                   sizes=SMALL_SIZES)
    with pytest.raises(TypeError, match=r"^Debounce cycles must be a positive integer, not 0$"):
        Standalone(network=network, images=images[:1], config=SMALL_BOARD, sizes=SMALL_SIZES,
                   debounce_cycles=0)
