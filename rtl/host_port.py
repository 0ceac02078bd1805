"""The top level's outside ports: the host memory port, the trace port and a test-only fault.

*Host port* (``Top.host``, ``docs/accelerator.md`` section 5). The host writes the weight,
bias, descriptor and pixel memories one word per cycle (``w_sel``, ``w_addr``, ``w_data``,
``w_en``) and reads the membrane memory and the per-layer spike counters (``r_sel``,
``r_addr``, ``r_en``; ``r_data`` is valid the cycle after ``r_en`` and holds until the next
read). Both work only while the accelerator is idle (``busy`` low): writes are ignored and
reads return stale data while it runs. A word is the memory's row packed as Amaranth packs
its layout, lane 0 in the least significant bits; :func:`host_words` builds every word of a
program, :func:`unpack_rows` reads rows back.

*Trace port* (``Top.trace``). In each cycle the aggregation sweep writes a membrane row,
``valid`` is high and ``record`` says which row (descriptor ``layer``, channel ``group``,
timestep ``step``, ``position`` in the group) with the row written (``membrane``, one value
per lane) and the spikes it fired (``spikes``, bit ``i`` is lane ``i``). It is how a
Verilog testbench sees what the Amaranth harness watches inside the design.

*Fault* (:class:`MembraneFault`). A design built with ``Top(fault=...)`` flips one bit of one
lane of one membrane write, in the membrane memory and on the trace port alike. It exists only
to prove that the scoreboards catch a broken design and name the right cycle and neuron.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import row_layout

__all__ = [
    "HostMemory",
    "host_signature",
    "trace_record_layout",
    "trace_signature",
    "trace_widths",
    "MembraneFault",
    "host_words",
    "pixel_words",
    "unpack_rows",
    "word_bits",
]


class HostMemory(enum.Enum, shape=unsigned(3)):
    """The memory a host access selects (``w_sel`` / ``r_sel``)."""

    #: Weight rows (write).
    WEIGHTS = 0
    #: Bias rows (write).
    BIASES = 1
    #: Layer descriptors (write).
    DESCRIPTORS = 2
    #: Input pixels, one per word (write).
    PIXELS = 3
    #: Membrane rows (read): the output layer's group ``g`` at rows ``g * positions ...``.
    MEMBRANES = 4
    #: Spikes emitted per descriptor in the last run (read).
    SPIKE_COUNTS = 5


def host_signature(*, addr_bits, w_data_bits, r_data_bits):
    """The host port, seen from the host (``Top`` has it as ``In``)."""
    return wiring.Signature({
        "w_sel": Out(HostMemory), "w_addr": Out(addr_bits), "w_data": Out(w_data_bits),
        "w_en": Out(1),
        "r_sel": Out(HostMemory), "r_addr": Out(addr_bits), "r_en": Out(1),
        "r_data": In(r_data_bits),
    })


def trace_record_layout(*, layer_bits, group_bits, step_bits, addr_bits, membrane_bits,
                        lanes):
    """One trace record: where a membrane row goes, the row and its spikes.

    One vector in the Verilog (``trace__record``), so that a testbench reads a record at once.
    """
    return data.StructLayout({
        "layer": unsigned(layer_bits), "group": unsigned(group_bits),
        "step": unsigned(step_bits), "position": unsigned(addr_bits),
        "membrane": row_layout(membrane_bits, lanes), "spikes": unsigned(lanes),
    })


def trace_widths(config, widths):
    """Keyword widths of :func:`trace_record_layout` for ``config`` and its
    ``rtl.sequencer.descriptor_widths`` ``widths``."""
    return {"layer_bits": widths["layer_bits"], "group_bits": widths["count_bits"],
            "step_bits": widths["timestep_bits"], "addr_bits": config.addr_bits,
            "membrane_bits": config.core_membrane_bits, "lanes": config.pes}


def trace_signature(**widths):
    """The trace port, seen from the design (``Top`` has it as ``Out``): ``valid`` and
    ``record`` (:func:`trace_record_layout` of ``widths``)."""
    return wiring.Signature({"valid": Out(1), "record": Out(trace_record_layout(**widths))})


@dataclass(frozen=True)
class MembraneFault:
    """Flip bit ``bit`` of the membrane that one write stores for one neuron (tests only).

    Parameters
    ----------
    layer : int
        Descriptor index (``Program.layers`` order).
    timestep : int
        1-based timestep.
    channel : int
        Output channel (lane ``channel % pes`` of group ``channel // pes``).
    position : int
        Output position ``y * width + x``.
    bit : int
        Bit of the ``membrane_bits``-wide value, 0 the least significant.
    """

    layer: int
    timestep: int
    channel: int
    position: int
    bit: int

    def __post_init__(self):
        for name in ("layer", "timestep", "channel", "position", "bit"):
            value = getattr(self, name)
            low = 1 if name == "timestep" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                kind = "a positive integer" if low else "a non-negative integer"
                raise TypeError(f"Fault {name} must be {kind}, not {value!r}")


def _pack_rows(layout, rows):
    return [layout.const(row).as_bits() for row in rows]


def host_words(program, descriptor_layout):
    """Every word the host writes to load ``program``: ``{HostMemory: [word, ...]}``.

    ``descriptor_layout`` is ``Top.sequencer.descriptor_layout`` (the design's widths).
    Word ``i`` of a list goes to address ``i`` of that memory.
    """
    config = program.config
    return {
        HostMemory.WEIGHTS: _pack_rows(row_layout(config.weight_bits, config.pes),
                                       program.weights),
        HostMemory.BIASES: _pack_rows(row_layout(config.psum_bits, config.pes),
                                      program.biases),
        HostMemory.DESCRIPTORS: _pack_rows(descriptor_layout, program.descriptors),
    }


def pixel_words(program, image):
    """The pixel memory words of one integer image (unsigned, one pixel per word)."""
    return program.pixels(image)


def unpack_rows(words, *, bits, lanes):
    """Signed lanes of packed rows: ``(len(words), lanes)`` int64 array.

    ``words`` are non-negative integers of ``bits * lanes`` bits, lane 0 in the low bits.
    """
    count = len(words)
    width = bits * lanes
    nbytes = (width + 7) // 8
    raw = np.frombuffer(b"".join(int(w).to_bytes(nbytes, "little") for w in words),
                        dtype=np.uint8).reshape(count, nbytes)
    flat = np.unpackbits(raw, axis=1, bitorder="little")[:, :width].reshape(count, lanes, bits)
    weights = (1 << np.arange(bits, dtype=np.int64))
    weights[-1] = -weights[-1]  # two's complement: the top bit counts negative
    return flat.astype(np.int64) @ weights


def word_bits(shape):
    """Width in bits of a memory's word (its shape or layout)."""
    return Shape.cast(shape).width
