"""The standalone demo (``boards/standalone.py``) on the PYNQ-Z2's buttons, switches and LEDs.

BTN0 starts a run of the image chosen by SW1..SW0; LD3..LD0 show the predicted class in
binary; LD4 (RGB) lights green when the prediction equals the golden model's, red when not;
LD5 lights blue while a run is on. The clock is the 125 MHz PL clock on H16 (the platform's
default clock); there is no reset button: the platform holds the design in reset until
configuration ends.
"""

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

__all__ = ["StandaloneBoard"]


class StandaloneBoard(Elaboratable):
    """Pin-level wrapper of a :class:`~.standalone.Standalone` for ``PynqZ2Platform``.

    Parameters
    ----------
    demo : Standalone
    """

    def __init__(self, demo):
        self.demo = demo

    def elaborate(self, platform):
        m = Module()
        m.submodules.demo = demo = self.demo

        def buffer(name, direction, port):
            m.submodules[name] = buf = io.Buffer(direction, port)
            return buf

        button = platform.request("button", 0, dir="-")
        m.d.comb += demo.start.eq(buffer("button_0", "i", button).i)
        for bit in range(2):
            switch = platform.request("switch", bit, dir="-")
            m.d.comb += demo.select[bit].eq(buffer(f"switch_{bit}", "i", switch).i)
        for bit in range(4):
            led = platform.request("led", bit, dir="-")
            m.d.comb += buffer(f"led_{bit}", "o", led).o.eq(demo.leds[bit])
        colours = {0: {"r": demo.fail_led, "g": demo.pass_led, "b": 0},
                   1: {"r": 0, "g": 0, "b": demo.busy_led}}
        for number, drive in colours.items():
            rgb = platform.request("rgb_led", number, dir={"r": "-", "g": "-", "b": "-"})
            for colour, value in drive.items():
                port = getattr(rgb, colour)
                m.d.comb += buffer(f"rgb_led_{number}_{colour}", "o", port).o.eq(value)
        return m
