"""A network's memory images as the 32-bit words the host writes (``MEM_DATA``, ``docs/board.md``).

:func:`program_image` lays a network out on a board design (``rtl/program.py``), packs every
row of the descriptor table, the weights and the biases as the host port takes them
(``rtl.host_port.host_words``: the row's bits as the Amaranth layout of that memory places
them, lane 0 lowest) and splits each row into 32-bit words with :func:`split_row`, word ``k``
holding bits ``32 k .. 32 k + 31``. The result is plain JSON, so the board's Python needs
neither Amaranth nor spikeforge to load it (``boards/driver.py``).
"""

from amaranth.hdl import Elaboratable

from ..rtl.sizing import Design
from ..rtl.host_port import HostMemory, host_words, word_bits
from ..rtl.program import build_program
from ..rtl.top import Top
from .axis_pixels import pixel_container_bits
from .regmap import row_words

__all__ = ["FORMAT_NAME", "split_row", "program_image"]

FORMAT_NAME = "spikeforge-board-program"
FORMAT_VERSION = 1


def _never_elaborated(top):
    """Silence Amaranth's "created but never used" warnings of a ``Top`` (and of the blocks it
    builds) that exists only for its layouts."""
    pending, seen = [top], set()
    while pending:
        block = pending.pop()
        if id(block) in seen:
            continue
        seen.add(id(block))
        block._MustUse__silence = True
        pending.extend(value for value in vars(block).values()
                       if isinstance(value, Elaboratable))


def split_row(number, bits):
    """The 32-bit words of a ``bits``-wide row given as a non-negative integer."""
    return [(number >> (32 * k)) & 0xFFFF_FFFF for k in range(row_words(bits))]


def program_image(network, config, sizes):
    """The JSON-ready image of ``network`` on the design ``(config, sizes)`` (``sizes`` a
    :class:`~spikeforge.rtl.sizing.MemorySizes`).

    Keys: ``format``/``format_version``, ``design_hash`` (hex), ``network``, ``lanes``,
    ``memories`` (name -> ``{"rows", "words_per_row", "words"}``, words row-major),
    ``output`` (``channels``, ``positions``), ``input`` (``shape``, ``bits``,
    ``container_bits``), ``timesteps`` and ``layers`` (one ``{"name", "spikes"}`` per
    descriptor, in table order: ``spikes`` says whether its ``SPIKE_COUNTS`` row counts
    emitted spikes).

    Raises
    ------
    rtl.program.ProgramError
        The network does not fit the design.
    """
    program = build_program(network, config, sizes)
    # A Top only for its layouts (never elaborated): the words follow the design's widths.
    top = Top(config=config, sizes=sizes)
    _never_elaborated(top)
    packed = host_words(program, top.sequencer.descriptor_layout)
    memories = {}
    for name, which in (("descriptors", HostMemory.DESCRIPTORS),
                        ("weights", HostMemory.WEIGHTS), ("biases", HostMemory.BIASES)):
        bits = word_bits(getattr(top, name).shape)
        memories[name] = {"rows": len(packed[which]), "words_per_row": row_words(bits),
                          "words": [word for row in packed[which]
                                    for word in split_row(row, bits)]}
    last = program.layers[-1]
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "design_hash": f"{Design(config, sizes).hash:064x}",
        "network": network.name, "lanes": config.pes, "timesteps": network.timesteps,
        "memories": memories,
        "output": {"channels": last.channels, "positions": last.positions},
        "layers": [{"name": plan.name, "spikes": not (plan.output or plan.pool)}
                   for plan in program.layers],
        "input": {"shape": list(network.input.shape), "bits": network.input.bits,
                  "container_bits": pixel_container_bits(sizes.pixel_bits)},
    }
