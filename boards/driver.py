"""PYNQ driver of the PS-attached accelerator (``spikeforge build --top ps``).

On the board (PYNQ image, Python with NumPy and the ``pynq`` package)::

    from spikeforge.boards.driver import Accelerator
    acc = Accelerator("spikeforge.bit", "program.json")   # loads the overlay and the network
    result = acc.run(image)                                # integer pixels, the input's shape
    result.prediction, result.cycles, result.spikes

:class:`Accelerator` loads the overlay (``pynq.Overlay``; the ``.hwh`` next to the ``.bit``),
checks the ``ID`` and ``CONFIG_HASH`` registers against the program file
(``boards/program_image.py``), writes the descriptors, weights and biases through the
``MEM_*`` registers (``boards/regmap.py``) and runs images. With the AXI DMA an image goes
out as one packet (``MODE`` auto-start + stream results) and the result packet comes back
(membranes, prediction, cycles); without one (``dma=None``), pixels go through ``MEM_DATA``,
``CONTROL`` starts the run, ``STATUS`` is polled and the membranes are read through
``MEM_RDATA``. Either way the counters and the per-layer spike counters are read after the
run.

``pynq`` is imported only when the driver opens an overlay itself; tests pass their own
``mmio``, ``dma`` and ``allocate`` (the same interfaces: ``mmio.read(offset)``,
``mmio.write(offset, value)``, ``dma.sendchannel.transfer(buffer)``/``.idle``/``.wait()``,
``dma.recvchannel``..., ``allocate(shape=, dtype=)``). This module needs only NumPy and
``regmap.py`` (Python 3.8 syntax, as on PYNQ images): ``spikeforge build --top ps`` copies the
two into its ``overlay/`` folder as a package of their own (``boards/overlay.py``).
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .regmap import (COUNTERS, CONTROL_START, IRQ_DONE, MAGIC, MODE_AUTO_START,
                     MODE_STREAM_RESULTS, REGISTERS, STATUS_BUSY, STATUS_DONE, STATUS_ERROR,
                     STATUS_READOUT, Memory, row_words)

__all__ = ["Accelerator", "RunResult", "DriverError", "IP_NAME", "DMA_NAME"]

IP_NAME = "spikeforge_0"   # boards/block_design.py's cell names
DMA_NAME = "dma"
_FORMAT = "spikeforge-board-program"


class DriverError(RuntimeError):
    """The board, the overlay or the program is not what the driver expects."""


@dataclass
class RunResult:
    """One image's run.

    Members
    -------
    prediction : int
        Arg max of the output membranes (computed by the hardware).
    membranes : list of int
        The output layer's final membranes, neuron ``c * positions + p``.
    cycles : int
    counters : dict of str -> int
        Every counter register (``CYCLES``, ``PE_BUSY``, ...).
    spikes : dict of str -> int
        Spikes emitted per spiking layer.
    seconds : float
        Wall time of the run as the host saw it.
    """

    prediction: int
    membranes: list
    cycles: int
    counters: dict
    spikes: dict
    seconds: float


class Accelerator:
    """The accelerator on the board.

    Parameters
    ----------
    bitfile : str or Path, optional
        The overlay's ``.bit`` (its ``.hwh`` beside it); opened with ``pynq.Overlay``
        unless ``mmio`` is given.
    program : str, Path or dict, optional
        ``program.json`` of ``spikeforge build`` (or its dict); loaded at once when given.
    mmio, dma, allocate : optional
        Stand-ins for the overlay's MMIO, its AXI DMA and ``pynq.allocate``; ``dma=None``
        with ``mmio`` given runs without DMA.
    timeout : float
        Seconds a run may take, DMA transfers included: every wait polls against this
        deadline and raises :class:`DriverError` with the register state (:meth:`state`).

    Raises
    ------
    DriverError
        Neither ``bitfile`` nor ``mmio``, no ``pynq`` to open the overlay, or the ID register
        does not read :data:`~.regmap.MAGIC`.
    """

    def __init__(self, bitfile=None, program=None, *, mmio=None, dma=None, allocate=None,
                 timeout=5.0):
        if mmio is None:
            if bitfile is None:
                raise DriverError("Accelerator needs an overlay bitfile or an mmio object")
            mmio, dma, allocate = self._open(bitfile)
        self.mmio, self.dma, self.allocate = mmio, dma, allocate
        self.timeout = timeout
        self.program = None
        ident = self.read("ID")
        if ident != MAGIC:
            raise DriverError(f"register ID reads {ident:#010x}, not the spikeforge "
                              f"accelerator's {MAGIC:#010x}")
        self.lanes = self.read("LANES")
        widths = self.read("WIDTHS")
        self.membrane_bits = (widths >> 16) & 0xFF
        self.pixel_bits = (widths >> 24) & 0xFF
        if program is not None:
            self.load(program)

    @staticmethod
    def _open(bitfile):
        try:
            import pynq
        except ImportError:
            raise DriverError("opening an overlay needs the pynq package (on the board)") \
                from None
        overlay = pynq.Overlay(str(bitfile))
        ip = getattr(overlay, IP_NAME)
        return ip.mmio, getattr(overlay, DMA_NAME, None), pynq.allocate

    # ---------------------------------------------------------------- registers

    def read(self, name):
        return int(self.mmio.read(REGISTERS[name]))

    def write(self, name, value):
        self.mmio.write(REGISTERS[name], int(value) & 0xFFFF_FFFF)

    def _write_rows(self, memory, words, address=0):
        self.write("MEM_SELECT", memory)
        self.write("MEM_ADDR", address)
        for word in words:
            self.write("MEM_DATA", word)

    def _read_words(self, memory, address, count):
        self.write("MEM_SELECT", memory)
        self.write("MEM_ADDR", address)
        return [self.read("MEM_RDATA") for _ in range(count)]

    # ---------------------------------------------------------------- program

    def load(self, program):
        """Write a program (``program.json`` path or dict) into the accelerator.

        Raises
        ------
        DriverError
            Not a program file, or made for another design (``CONFIG_HASH``).
        """
        if not isinstance(program, dict):
            program = json.loads(Path(program).read_text())
        if program.get("format") != _FORMAT:
            raise DriverError(f"not a spikeforge board program (format {_FORMAT!r})")
        expected = int(program["design_hash"], 16) & 0xFFFF_FFFF
        found = self.read("CONFIG_HASH")
        if found != expected:
            raise DriverError(f"the program was built for design {expected:#010x}, the "
                              f"overlay is design {found:#010x}; rebuild one of them")
        for name in ("descriptors", "weights", "biases"):
            self._write_rows(Memory.NAMES.index(name), program["memories"][name]["words"])
        self.write("OUT_CHANNELS", program["output"]["channels"])
        self.write("OUT_POSITIONS", program["output"]["positions"])
        self.write("IRQ_STATUS", IRQ_DONE)
        self.program = program

    # ---------------------------------------------------------------- runs

    def _pixels(self, image):
        spec = self.program["input"]
        image = np.asarray(image)
        if list(image.shape) != spec["shape"]:
            raise DriverError(f"image shape {tuple(image.shape)} is not the network's input "
                              f"shape {tuple(spec['shape'])}")
        if image.min() < 0 or image.max() >= 1 << spec["bits"]:
            raise DriverError(f"pixels must be integers in 0..{(1 << spec['bits']) - 1}")
        return image.reshape(-1).astype(np.int64)

    def run(self, image):
        """Run one integer image; return a :class:`RunResult`.

        Raises
        ------
        DriverError
            No program loaded, a bad image, a run that does not end within ``timeout`` or
            ends with the error flag.
        """
        if self.program is None:
            raise DriverError("load a program first")
        pixels = self._pixels(image)
        began = time.perf_counter()
        if self.dma is not None:
            membranes, prediction, cycles = self._run_dma(pixels)
        else:
            membranes, prediction, cycles = self._run_mmio(pixels)
        seconds = time.perf_counter() - began
        status = self.read("STATUS")
        if status & STATUS_ERROR:
            raise DriverError("the accelerator flags an error (a MEM_* access to a wrong "
                              "memory)")
        counters = {name: self.read(name) for name in COUNTERS}
        layers = self.program["layers"]
        counts = self._read_words(Memory.SPIKE_COUNTS, 0, len(layers))
        spikes = {layer["name"]: count for layer, count in zip(layers, counts)
                  if layer["spikes"]}
        self.write("IRQ_STATUS", IRQ_DONE)
        return RunResult(prediction=prediction, membranes=membranes, cycles=cycles,
                         counters=counters, spikes=spikes, seconds=seconds)

    def run_many(self, images):
        """:meth:`run` each image in turn."""
        return [self.run(image) for image in images]

    def _outputs(self):
        return self.program["output"]["channels"] * self.program["output"]["positions"]

    def _run_dma(self, pixels):
        container = self.program["input"]["container_bits"]
        dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[container]
        raw = pixels.astype(dtype).tobytes()
        send = self.allocate(shape=(len(raw),), dtype=np.uint8)
        send[:] = np.frombuffer(raw, dtype=np.uint8)
        recv = self.allocate(shape=(self._outputs() + 2,), dtype=np.uint32)
        self.write("MODE", MODE_AUTO_START | MODE_STREAM_RESULTS)
        self.dma.recvchannel.transfer(recv)
        self.dma.sendchannel.transfer(send)
        # PYNQ's channel wait() spins without a timeout: poll idle (DMASR.Idle) against the
        # deadline first, so that wait() returns at once and a lost packet raises.
        deadline = time.monotonic() + self.timeout
        for channel, what in ((self.dma.sendchannel, "the image transfer (DMA MM2S)"),
                              (self.dma.recvchannel, "the result packet (DMA S2MM)")):
            self._poll(lambda: channel.idle, what, deadline)
            channel.wait()
        words = [int(w) for w in np.asarray(recv)]
        for buffer in (send, recv):
            if hasattr(buffer, "freebuffer"):
                buffer.freebuffer()
        outputs = self._outputs()
        membranes = [w - (1 << 32) if w >> 31 else w for w in words[:outputs]]
        return membranes, words[outputs], words[outputs + 1]

    def _run_mmio(self, pixels):
        self.write("MODE", 0)
        self._write_rows(Memory.PIXELS, [int(p) for p in pixels])
        self.write("CONTROL", CONTROL_START)
        self._poll(lambda: self.read("STATUS") & STATUS_DONE, "the run",
                   time.monotonic() + self.timeout)
        return self._read_membranes(), self.read("PREDICTION"), self.read("CYCLES")

    def _poll(self, condition, what, deadline):
        """Return once ``condition()`` is true; raise :class:`DriverError` naming the register
        state when ``deadline`` (``time.monotonic()``) passes first."""
        while not condition():
            if time.monotonic() > deadline:
                raise DriverError(f"{what} did not finish within {self.timeout} s "
                                  f"({self.state()})")

    def state(self):
        """The accelerator's run state as one line: ``STATUS`` and its flags, ``MODE``,
        ``CYCLES``, ``RUNS`` and, with a DMA, whether each channel is idle."""
        status = self.read("STATUS")
        flags = [name for name, bit in (("busy", STATUS_BUSY), ("done", STATUS_DONE),
                                        ("readout", STATUS_READOUT), ("error", STATUS_ERROR))
                 if status & bit]
        line = (f"STATUS {status:#010x} [{' '.join(flags) or 'idle'}], MODE "
                f"{self.read('MODE'):#x}, CYCLES {self.read('CYCLES')}, RUNS {self.read('RUNS')}")
        if self.dma is not None:
            for name in ("sendchannel", "recvchannel"):
                idle = getattr(getattr(self.dma, name), "idle", None)
                line += f", DMA {name} {'idle' if idle else 'not idle'}"
        return line

    def _read_membranes(self):
        """The output membranes through ``MEM_RDATA`` (group rows, lanes unpacked)."""
        channels = self.program["output"]["channels"]
        positions = self.program["output"]["positions"]
        lanes, bits = self.lanes, self.membrane_bits
        groups = -(-channels // lanes)
        per_row = row_words(lanes * bits)
        words = self._read_words(Memory.MEMBRANES, 0, groups * positions * per_row)
        membranes = []
        for channel in range(channels):
            group, lane = divmod(channel, lanes)
            for position in range(positions):
                row = group * positions + position
                value = 0
                for k in range(per_row):
                    value |= words[row * per_row + k] << (32 * k)
                field = (value >> (lane * bits)) & ((1 << bits) - 1)
                membranes.append(field - (1 << bits) if field >> (bits - 1) else field)
        return membranes
