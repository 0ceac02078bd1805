"""Synthesise one first-layer block alone, for ``spikeforge bench pim``.

A thin caller of ``boards/synth.py``, the project's one Yosys pipeline (same script, same
``stat`` parser, same :class:`~spikeforge.boards.synth.SynthError`, same resource table, so a
block's ``LUT`` means what ``spikeforge synth`` means: LUT1..LUT6 and INV plus the LUTs used
as memory). The block is synthesised out of context (no I/O buffers), so its figures compare
blocks, not a placed design.
"""

from ..boards.synth import SynthError, synthesize_component

__all__ = ["SynthError", "block_resources"]


def block_resources(component, *, name="block", timeout=1800, progress=None):
    """Resource name -> count used (``LUT``, ``LUTRAM``, ``FF``, ``CARRY4``, ``RAMB36``,
    ``RAMB18``, ``BRAM``, ``DSP48E1``) of ``component`` synthesised alone (cached).

    Raises
    ------
    SynthError
        Yosys is missing, failed or ran past ``timeout`` seconds.
    """
    report = synthesize_component(component, name, timeout=timeout, progress=progress)
    return {resource: row["used"] for resource, row in report.resources.items()}
