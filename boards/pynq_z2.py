"""The TUL PYNQ-Z2 board (Zynq xc7z020clg400-1) as an Amaranth platform.

Every pin below comes from the board's public master constraints file, TUL's
``pynq-z2_v1.0.xdc`` ("This file is a general .xdc for the PYNQ-Z2 board"), as published in
the PYNQ-Z2 download package and mirrored in public repositories (read from
``jodalyst/pynq-z2-io-basic: pynq-z2_v1.0.xdc`` and cross-checked line by line against a second
copy). The schematic net name of each pin (``Sch=...`` in that file) is given in the comments;
the silkscreen names are the board's (``LD0``.. ``LD5``, ``BTN0``.. ``BTN3``, ``SW0``/``SW1``,
``JA``/``JB``). Every user I/O on the PL side is 3.3 V (``LVCMOS33``); the HDMI lanes
(``TMDS_33``) and the ADAU1761 audio codec are left out because nothing here drives them.

The Raspberry Pi header shares pins with Pmod JA (GPIO 2..7 and ``ID_SD``/``ID_SC`` are
JA's eight pins): request one or the other, not both. amaranth-boards has no PYNQ-Z2 (its
closest board, the Arty Z7, has different audio, HDMI and header wiring), so the platform is
written here with ``amaranth.build`` only.
"""

from amaranth.build import Attrs, Clock, Connector, Pins, Resource, Subsignal
from amaranth.vendor import XilinxPlatform

__all__ = ["PynqZ2Platform", "DEVICE_RESOURCES"]

_IO = Attrs(IOSTANDARD="LVCMOS33")

#: What the xc7z020 (-1, clg400) offers, for utilisation percentages. Sources: FINN's
#: ``src/finn/util/platforms.py`` (``Zynq7020_Platform.compute_resources = [53200, 2 * 53200,
#: 280, 0, 220]``: LUT, FF, BRAM18, URAM, DSP) and the 7-series device table quoted in
#: ``../shared/reference/anchors.md`` section 6 (XC7Z020: 6650 CLB, 53200 6-LUT, 4350 SLICEM,
#: 140 BRAM36, 220 DSP). Derived: one CARRY4 per slice, 2 slices per CLB -> 13,300; LUTRAM
#: only in SLICEMs, 4 LUTs each -> 17,400; a RAMB36 is two RAMB18 halves -> 140 = 280 / 2.
DEVICE_RESOURCES = {
    "LUT": 53200,
    "FF": 106400,
    "CARRY4": 13300,
    "LUTRAM": 17400,
    "RAMB36": 140,
    "RAMB18": 280,
    "DSP48E1": 220,
}


def _single(name, number, pin, direction):
    return Resource(name, number, Pins(pin, dir=direction), _IO)


def _rgb(number, *, r, g, b):
    return Resource("rgb_led", number,
                    Subsignal("r", Pins(r, dir="o")), Subsignal("g", Pins(g, dir="o")),
                    Subsignal("b", Pins(b, dir="o")), _IO)


class PynqZ2Platform(XilinxPlatform):
    """TUL PYNQ-Z2: xc7z020clg400-1 with a 125 MHz PL clock on H16.

    Resources: ``clk125``; ``led`` 0..3 (LD0..LD3); ``rgb_led`` 0..1 (LD4, LD5) with ``r``,
    ``g``, ``b``; ``button`` 0..3 (BTN0..BTN3, high when pressed); ``switch`` 0..1 (SW0,
    SW1). Connectors: ``pmod`` 0 (JA) and 1 (JB) in Digilent order (pins 1-4 and 7-10,
    ``-`` for power and ground), ``arduino`` 0 (``d0``..``d13``, ``a0``..``a5`` as digital
    I/O, ``an0_p``/``an0_n``.. the XADC pairs behind A0..A5, ``ioa``, ``scl``/``sda``,
    ``miso``/``mosi``/``sck``/``ss``) and ``rpi`` 0 (``gpio2``..``gpio26``, ``id_sd``,
    ``id_sc``; shares pins with JA).
    """

    device = "xc7z020"
    package = "clg400"
    speed = "1"
    default_clk = "clk125"

    resources = [
        # Sch=sysclk, IO_L13P_T2_MRCC_35: the 125 MHz oscillator routed to the PL.
        Resource("clk125", 0, Pins("H16", dir="i"), Clock(125e6), _IO),
        _single("switch", 0, "M20", "i"),  # Sch=sw[0]
        _single("switch", 1, "M19", "i"),  # Sch=sw[1]
        _single("led", 0, "R14", "o"),  # Sch=led[0]
        _single("led", 1, "P14", "o"),  # Sch=led[1]
        _single("led", 2, "N16", "o"),  # Sch=led[2]
        _single("led", 3, "M14", "o"),  # Sch=led[3]
        _single("button", 0, "D19", "i"),  # Sch=btn[0]
        _single("button", 1, "D20", "i"),  # Sch=btn[1]
        _single("button", 2, "L20", "i"),  # Sch=btn[2]
        _single("button", 3, "L19", "i"),  # Sch=btn[3]
        _rgb(0, r="N15", g="G17", b="L15"),  # LD4: Sch=led4_r, led4_g, led4_b
        _rgb(1, r="M15", g="L14", b="G14"),  # LD5: Sch=led5_r, led5_g, led5_b
    ]

    connectors = [
        # JA: Sch=ja_p[1] ja_n[1] ja_p[2] ja_n[2] (top row), ja_p[3] ja_n[3] ja_p[4] ja_n[4].
        Connector("pmod", 0, "Y18 Y19 Y16 Y17 - - U18 U19 W18 W19 - -"),
        # JB: Sch=jb_p[1] jb_n[1] jb_p[2] jb_n[2], jb_p[3] jb_n[3] jb_p[4] jb_n[4].
        Connector("pmod", 1, "W14 Y14 T11 T10 - - V16 W16 V12 W13 - -"),
        Connector("arduino", 0, {
            # Sch=ar[0] .. ar[13]: the digital header.
            "d0": "T14", "d1": "U12", "d2": "U13", "d3": "V13", "d4": "V15", "d5": "T15",
            "d6": "R16", "d7": "U17", "d8": "V17", "d9": "V18", "d10": "T16", "d11": "R17",
            "d12": "P18", "d13": "N17",
            "ioa": "Y13",  # Sch=a
            # Sch=a[0] .. a[5]: the outer analog header used as digital I/O.
            "a0": "Y11", "a1": "Y12", "a2": "W11", "a3": "V11", "a4": "T5", "a5": "U10",
            # Sch=ar_an0_p/n .. ar_an5_p/n: XADC auxiliary inputs behind A0..A5.
            "an0_p": "E17", "an0_n": "D18", "an1_p": "E18", "an1_n": "E19",
            "an2_p": "K14", "an2_n": "J14", "an3_p": "K16", "an3_n": "J16",
            "an4_p": "J20", "an4_n": "H20", "an5_p": "G19", "an5_n": "G20",
            # Sch=ar_scl, ar_sda (I2C); miso, ar_mosi_r, sck, ss (SPI).
            "scl": "P16", "sda": "P15",
            "miso": "W15", "mosi": "T12", "sck": "H15", "ss": "F16",
        }),
        Connector("rpi", 0, {
            # Sch=rpio_NN_r, NN = the Broadcom GPIO number of the Raspberry Pi header.
            "gpio2": "W18", "gpio3": "W19", "gpio4": "Y18", "gpio5": "Y19", "gpio6": "U18",
            "gpio7": "U19", "gpio8": "F19", "gpio9": "V10", "gpio10": "V8", "gpio11": "W10",
            "gpio12": "B20", "gpio13": "W8", "gpio14": "V6", "gpio15": "Y6", "gpio16": "B19",
            "gpio17": "U7", "gpio18": "C20", "gpio19": "Y8", "gpio20": "A20", "gpio21": "Y9",
            "gpio22": "U8", "gpio23": "W6", "gpio24": "Y7", "gpio25": "F20", "gpio26": "W9",
            "id_sd": "Y16", "id_sc": "Y17",  # Sch=rpio_sd_r, rpio_sc_r
        }),
    ]

    def __init__(self, *, toolchain="Vivado"):
        super().__init__(toolchain=toolchain)

    @property
    def part(self):
        """The Vivado part name, ``xc7z020clg400-1``."""
        return f"{self.device}{self.package}-{self.speed}"
