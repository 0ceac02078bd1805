"""The PYNQ-Z2 platform against the board's master XDC (``pynq-z2_v1.0.xdc``, TUL): every pin
below is transcribed from that file's ``PACKAGE_PIN`` lines, not from boards/pynq_z2.py."""

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from spikeforge.boards.pynq_z2 import DEVICE_RESOURCES, PynqZ2Platform

# Sch name in the master XDC -> PACKAGE_PIN.
MASTER = {
    "sysclk": "H16", "sw[0]": "M20", "sw[1]": "M19",
    "led[0]": "R14", "led[1]": "P14", "led[2]": "N16", "led[3]": "M14",
    "btn[0]": "D19", "btn[1]": "D20", "btn[2]": "L20", "btn[3]": "L19",
    "led4_r": "N15", "led4_g": "G17", "led4_b": "L15",
    "led5_r": "M15", "led5_g": "L14", "led5_b": "G14",
    "ja": ["Y18", "Y19", "Y16", "Y17", "U18", "U19", "W18", "W19"],
    "jb": ["W14", "Y14", "T11", "T10", "V16", "W16", "V12", "W13"],
    "ar": ["T14", "U12", "U13", "V13", "V15", "T15", "R16", "U17", "V17", "V18", "T16",
           "R17", "P18", "N17"],
    "a": ["Y11", "Y12", "W11", "V11", "T5", "U10"],
    "rpio": {2: "W18", 3: "W19", 4: "Y18", 5: "Y19", 6: "U18", 7: "U19", 8: "F19",
             9: "V10", 10: "V8", 11: "W10", 12: "B20", 13: "W8", 14: "V6", 15: "Y6",
             16: "B19", 17: "U7", 18: "C20", 19: "Y8", 20: "A20", 21: "Y9", 22: "U8",
             23: "W6", 24: "Y7", 25: "F20", 26: "W9"},
}


def _pins(platform, name, number):
    resource = platform.lookup(name, number)
    return resource.ios[0].names, resource.attrs["IOSTANDARD"]


def test_device_and_clock():
    platform = PynqZ2Platform()
    assert (platform.device, platform.package, platform.speed) == ("xc7z020", "clg400", "1")
    assert platform.part == "xc7z020clg400-1"
    assert platform.default_clk == "clk125"
    clock = platform.lookup("clk125", 0)
    assert clock.ios[0].names == [MASTER["sysclk"]] and clock.clock.frequency == 125e6


@pytest.mark.parametrize("name, count, sch", [("switch", 2, "sw"), ("led", 4, "led"),
                                              ("button", 4, "btn")])
def test_single_pins(name, count, sch):
    platform = PynqZ2Platform()
    for number in range(count):
        assert _pins(platform, name, number) == ([MASTER[f"{sch}[{number}]"]], "LVCMOS33")


def test_rgb_leds():
    platform = PynqZ2Platform()
    for number, led in ((0, "led4"), (1, "led5")):
        resource = platform.lookup("rgb_led", number)
        pins = {sub.name: sub.ios[0].names for sub in resource.ios}
        assert pins == {c: [MASTER[f"{led}_{c}"]] for c in "rgb"}


def test_connectors():
    connectors = {key: c.mapping for key, c in PynqZ2Platform().connectors.items()}
    for number, header in ((0, "ja"), (1, "jb")):
        mapping = connectors["pmod", number]
        assert [mapping[str(pin)] for pin in (1, 2, 3, 4, 7, 8, 9, 10)] == MASTER[header]
        assert set(mapping) == {"1", "2", "3", "4", "7", "8", "9", "10"}
    arduino = connectors["arduino", 0]
    assert [arduino[f"d{i}"] for i in range(14)] == MASTER["ar"]
    assert [arduino[f"a{i}"] for i in range(6)] == MASTER["a"]
    assert (arduino["scl"], arduino["sda"], arduino["ioa"]) == ("P16", "P15", "Y13")
    assert (arduino["an0_p"], arduino["an0_n"], arduino["an5_p"], arduino["an5_n"]) == (
        "E17", "D18", "G19", "G20")
    rpi = connectors["rpi", 0]
    assert {int(k[4:]): v for k, v in rpi.items() if k.startswith("gpio")} == MASTER["rpio"]
    assert (rpi["id_sd"], rpi["id_sc"]) == ("Y16", "Y17")


def test_device_resources():
    assert DEVICE_RESOURCES == {"LUT": 53200, "FF": 106400, "CARRY4": 13300, "LUTRAM": 17400,
                                "RAMB36": 140, "RAMB18": 280, "DSP48E1": 220}


class _Blinky(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        led = platform.request("led", 0, dir="-")
        button = platform.request("button", 0, dir="-")
        m.submodules.led = led_buffer = io.Buffer("o", led)
        m.submodules.button = button_buffer = io.Buffer("i", button)
        m.d.sync += led_buffer.o.eq(button_buffer.i)
        return m


def test_build_plan():
    plan = PynqZ2Platform().build(_Blinky(), name="blinky", do_build=False)
    assert {"blinky.v", "blinky.xdc", "blinky.tcl", "build_blinky.sh"} <= set(plan.files)
    xdc = plan.files["blinky.xdc"]
    for pin, port in (("R14", "led_0__io"), ("D19", "button_0__io"), ("H16", "clk125_0__io")):
        assert f'set_property LOC {pin} [get_ports "{port}"]' in xdc
    assert "create_project -force -name blinky -part xc7z020clg400-1" in plan.files["blinky.tcl"]
