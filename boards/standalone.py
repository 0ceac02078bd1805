"""The standalone demo: one network and a few test images baked into the bitstream.

No processor takes part. The network's descriptors, weights and biases are the initial
contents of the accelerator's memories; the images (pixels) and their golden predictions
are ROMs. Pressing the button (``start``, debounced) runs the image chosen by ``select``
(the switches): the image is copied into the pixel memory through the host port, the
accelerator runs, and the :class:`~.readout.Readout` finds the arg max of the output
membranes. Then ``leds`` show the predicted class (binary, LD0 the least significant bit)
and ``pass_led``/``fail_led`` whether it equals the golden model's prediction of that image;
``busy_led`` is on from the press to the result. A press while busy is ignored.

``boards/standalone_board.py`` puts it on the PYNQ-Z2's buttons, switches and LEDs.
"""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..golden import run as golden_run
from ..rtl.config import AcceleratorConfig
from ..rtl.host_port import HostMemory
from ..rtl.program import build_program
from ..rtl.top import Top
from .readout import Readout

__all__ = ["Standalone"]


class Standalone(wiring.Component):
    """Accelerator + baked-in network and images + button/LED control.

    Parameters
    ----------
    network : golden.Network
    images : array-like of int
        1..4 integer input images (the network's input shape); ``select`` picks one.
    config : AcceleratorConfig
    sizes : rtl.sizing.MemorySizes
        The ``Top`` sizes (the board design's, ``rtl.sizing.for_board``).
    debounce_cycles : int
        Cycles the button must read pressed before a run starts (2 ** 20, about 8 ms at
        125 MHz, on the board; a few in simulation).
    expected : list of int, optional
        The prediction that counts as a pass for each image; default the golden model's.

    Members
    -------
    start : In(1)
        The button, high while pressed (synchronised inside).
    select : In(2)
        The image to run (modulo the number of images).
    leds : Out(4)
    pass_led, fail_led, busy_led : Out(1)

    Raises
    ------
    TypeError
        A parameter has the wrong type.
    ValueError
        No images or more than 4, or an image of the wrong shape.
    rtl.program.ProgramError
        The network does not fit the design.
    """

    def __init__(self, *, network, images, config, sizes, debounce_cycles=1 << 20,
                 expected=None):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"Config must be an AcceleratorConfig, not {config!r}")
        if isinstance(debounce_cycles, bool) or not isinstance(debounce_cycles, int) or (
                debounce_cycles < 1):
            raise TypeError(f"Debounce cycles must be a positive integer, not "
                            f"{debounce_cycles!r}")
        images = np.asarray(images)
        shape = tuple(network.input.shape)
        if not 1 <= len(images) <= 4:
            raise ValueError(f"The standalone top holds 1 to 4 images, not {len(images)}")
        if images.shape[1:] != shape:
            raise ValueError(f"Images must have the network's input shape {shape}, not "
                             f"{images.shape[1:]}")
        self._sizes = sizes
        self._debounce = debounce_cycles
        program = build_program(network, config, sizes)
        self.program = program
        if expected is None:
            expected = golden_run(network, images).predictions
        self._expected = [int(p) for p in expected]
        if len(self._expected) != len(images):
            raise ValueError(f"Expected predictions must be one per image ({len(images)}), "
                             f"not {len(self._expected)}")
        self._pixels = [program.pixels(image) for image in images]
        self.top = Top(config=config, sizes=sizes)
        self.top.descriptors.init = program.descriptors
        self.top.weights.init = program.weights
        self.top.biases.init = program.biases
        self.rom = memory.MemoryData(shape=self.top.pixels.shape,
                                     depth=len(images) * len(self._pixels[0]),
                                     init=[p for pixels in self._pixels for p in pixels])
        last = program.layers[-1]
        self._outputs = (last.channels, last.positions)
        self.readout = Readout(lanes=config.pes, membrane_bits=config.core_membrane_bits,
                               addr_bits=len(self.top.host.r_addr),
                               data_bits=len(self.top.host.r_data))
        super().__init__({"start": In(1), "select": In(2), "leds": Out(4), "pass_led": Out(1),
                          "fail_led": Out(1), "busy_led": Out(1)})

    @property
    def expected(self):
        """The pass prediction of each image."""
        return list(self._expected)

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        m.submodules.readout = readout = self.readout
        host = top.host
        count = len(self._pixels)
        per_image = len(self._pixels[0])

        # Button: synchronise, then require debounce_cycles of "pressed" in a row.
        button = Signal()
        m.submodules.button_sync = FFSynchronizer(self.start, button)
        stable = Signal(range(self._debounce + 1))
        pressed = Signal()
        with m.If(~button):
            m.d.sync += [stable.eq(0), pressed.eq(0)]
        with m.Elif(stable < self._debounce):
            m.d.sync += stable.eq(stable + 1)
        with m.Else():
            m.d.sync += pressed.eq(1)
        press = Signal()
        m.d.comb += press.eq(button & (stable == self._debounce) & ~pressed)

        # Image ROM -> pixel memory, one pixel a cycle (the ROM's read takes one cycle).
        m.submodules.rom = rom = memory.Memory(data=self.rom)
        rom_read = rom.read_port()
        image = Signal(range(count))
        index = Signal(range(per_image + 1))
        copied = Signal.like(index)
        base = Signal(range(count * per_image))
        expected = Signal(range(max(self._expected) + 1))
        m.d.comb += [rom_read.addr.eq(base + index), host.w_sel.eq(HostMemory.PIXELS),
                     host.w_addr.eq(copied), host.w_data.eq(rom_read.data)]
        m.d.comb += [readout.channels.eq(self._outputs[0]),
                     readout.positions.eq(self._outputs[1]), readout.cycles.eq(top.cycles),
                     readout.o_stream.ready.eq(1), readout.r_data.eq(host.r_data),
                     host.r_sel.eq(readout.r_sel), host.r_addr.eq(readout.r_addr),
                     host.r_en.eq(readout.r_en)]
        selected = Signal.like(image)
        with m.Switch(self.select):
            for value in range(4):
                with m.Case(value):
                    m.d.comb += selected.eq(value % count)
        shown = Signal()
        with m.FSM():
            with m.State("IDLE"):
                with m.If(press):
                    m.d.sync += [image.eq(selected), index.eq(0), shown.eq(0)]
                    m.next = "SELECT"
            with m.State("SELECT"):
                m.d.comb += self.busy_led.eq(1)
                m.d.sync += base.eq(image * per_image)
                with m.Switch(image):
                    for number, prediction in enumerate(self._expected):
                        with m.Case(number):
                            m.d.sync += expected.eq(prediction)
                m.next = "COPY"
            with m.State("COPY"):
                # Cycle k reads pixel k and writes pixel k - 1 (read the cycle before).
                m.d.comb += [self.busy_led.eq(1), rom_read.en.eq(1),
                             host.w_en.eq(index != 0)]
                m.d.sync += [index.eq(index + 1), copied.eq(index)]
                with m.If(index == per_image):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy_led.eq(1), top.start.eq(1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += [self.busy_led.eq(1), readout.start.eq(top.done)]
                with m.If(readout.done):
                    m.d.sync += shown.eq(1)
                    m.next = "IDLE"
        correct = readout.prediction == expected
        m.d.comb += [self.leds.eq(readout.prediction),
                     self.pass_led.eq(shown & correct), self.fail_led.eq(shown & ~correct)]
        return m
