"""The board designs by name: which top, which config, which Verilog.

``spikeforge build`` and ``spikeforge synth`` name a board (``pynq-z2``) and a top
(``ps``: :class:`~.ps_top.PSTop`; ``standalone``: :class:`~.standalone.Standalone` with a
bundle and its first test images baked in). This module turns those names into components
and Verilog, so that both commands build exactly the same design.
"""

from amaranth.back import verilog

from ..rtl.config import AcceleratorConfig
from ..rtl.sizing import for_board
from .ps_top import PSTop
from .pynq_z2 import PynqZ2Platform
from .standalone import Standalone

__all__ = ["BOARDS", "TOPS", "MODULE_NAMES", "STANDALONE_IMAGES", "BoardError", "board_design",
           "check_board", "make_top", "top_verilog"]

BOARDS = {"pynq-z2": PynqZ2Platform}
TOPS = ("ps", "standalone")
#: Verilog module name of each top.
MODULE_NAMES = {"ps": "spikeforge_ps", "standalone": "spikeforge_standalone"}
#: Test images baked into the standalone top.
STANDALONE_IMAGES = 4


class BoardError(ValueError):
    """A board, top or design request that cannot be met; the message says why."""


def check_board(board):
    if board not in BOARDS:
        raise BoardError(f"unknown board {board!r}; known boards: {', '.join(BOARDS)}")
    return BOARDS[board]


def board_design(board, pes=None):
    """The board's design (``rtl.sizing.for_board``: config and memory sizes), with ``pes``
    PEs when given."""
    check_board(board)
    return for_board(board, pes=pes)


def make_top(top, *, config, sizes, network=None, images=None, debounce_cycles=1 << 20):
    """The component of ``top`` for ``config`` and the memory ``sizes`` (a fresh one per
    call: elaborate it once).

    ``network`` and ``images`` are needed by the standalone top (they are baked in).

    Raises
    ------
    BoardError
        Unknown top, or the standalone top without a network or images.
    rtl.program.ProgramError
        The network does not fit ``config``.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"Config must be an AcceleratorConfig, not {config!r}")
    if top == "ps":
        return PSTop(config=config, sizes=sizes)
    if top == "standalone":
        if network is None or images is None:
            raise BoardError("the standalone top needs a bundle and test images to bake in")
        return Standalone(network=network, images=images, config=config, sizes=sizes,
                          debounce_cycles=debounce_cycles)
    raise BoardError(f"unknown top {top!r}; known tops: {', '.join(TOPS)}")


def top_verilog(top, component):
    """``(module name, Verilog text)`` of a top's component (no source locations, so the
    text depends only on the design)."""
    name = MODULE_NAMES[top]
    return name, verilog.convert(component, name=name, emit_src=False)
