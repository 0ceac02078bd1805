"""Does a design fit the board's device? Synthesis-backed answers for ``fits``.

:func:`synth_design` synthesises a board design (``boards/designs.py``) with
``boards/synth.py`` and returns the summary ``spikeforge synth --json`` prints.
:class:`DeviceFit` plugs that into ``AcceleratorConfig.fits(network, device=...)``: the
config's usual memory checks plus one sentence per resource the design would take beyond
the device, before Vivado is ever run. It is opt-in because it runs Yosys (minutes for a
64-PE design the first time; cached by the Verilog's hash afterwards).
"""

import time

from .designs import board_design, check_board, make_top, top_verilog
from .synth import synthesize

__all__ = ["synth_design", "device_reasons", "DeviceFit"]


def synth_design(*, board="pynq-z2", top="ps", config=None, sizes=None, network=None,
                 images=None, progress=None, use_cache=True):
    """Synthesise a board design; return the summary dict (``spikeforge synth --json``).

    ``config`` and ``sizes`` default to the board's design (``board_design``).

    Keys: ``device``, ``board``, ``top``, ``module``, ``config``, ``resources`` (name ->
    ``{"used", "available", "percent"}``), ``timing`` (pre-route, optimistic), ``fits``,
    ``over``, ``cells``, ``yosys_seconds``, ``cached``, ``seconds`` and, with a network,
    ``bundle``.

    Raises
    ------
    boards.designs.BoardError
        Unknown board or top.
    rtl.program.ProgramError
        A baked-in network does not fit ``config``.
    boards.synth.SynthError
        Yosys failed.
    """
    check_board(board)
    design = board_design(board)
    config = design.config if config is None else config
    sizes = design.sizes if sizes is None else sizes
    began = time.perf_counter()
    component = make_top(top, config=config, sizes=sizes, network=network, images=images)
    module, text = top_verilog(top, component)
    report = synthesize(text, module, progress=progress, use_cache=use_cache)
    summary = {
        "device": report.device, "board": board, "top": top, "module": module,
        "config": config.to_json(), "sizes": sizes.to_json(),
        "resources": report.resources,
        "timing": report.timing,
        "fits": report.fits, "over": report.over(),
        "cells": report.cells,
        "yosys_seconds": report.seconds, "cached": report.cached,
        "seconds": round(time.perf_counter() - began, 1),
    }
    if network is not None:
        summary["bundle"] = network.name
    return summary


def device_reasons(summary):
    """``fits``-style sentences for each resource over the device (empty when it fits)."""
    return [f"the {summary['top']} design needs more than the {summary['device']} has: "
            f"{sentence}" for sentence in summary["over"]]


class DeviceFit:
    """``device`` argument of ``AcceleratorConfig.fits``: the board design must fit the chip.

    Parameters
    ----------
    board : str
    top : str
        ``"ps"`` (default) or ``"standalone"`` (then ``network`` and ``images`` are baked in).
    progress : callable, optional
        Hears when Yosys starts and ends.
    """

    def __init__(self, board="pynq-z2", top="ps", *, network=None, images=None,
                 progress=None):
        check_board(board)
        self.board, self.top = board, top
        self.network, self.images, self.progress = network, images, progress
        self.summary = None

    def __call__(self, config):
        """The reasons ``config``'s design (with the board's memory sizes) does not fit the
        device (empty when it does)."""
        self.summary = synth_design(board=self.board, top=self.top, config=config,
                                    network=self.network, images=self.images,
                                    progress=self.progress)
        return device_reasons(self.summary)
