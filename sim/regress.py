"""The regression suite: a declared matrix of designs and networks, run on Dask.

A :class:`Case` is one network with seeded random images on one design (config and memory
sizes). :func:`suite` declares the matrix of a suite:

* ``quick`` (CI, part of ``make test``): the shipped digits bundle on an 8-PE design, four
  seeded random networks (conv and linear templates) on one small 4-PE design with wide
  membranes, partial sums and a leak multiplier, and the shipped Indian Pines hybrid and
  MNIST VGG networks on the PYNQ-Z2 board design itself (:data:`QUICK_ON_BOARD`): three
  designs, so three simulator builds;
* ``full``: every shipped bundle x 8, 16 and 64 PEs x two width sets (the design of
  :func:`~spikeforge.rtl.sizing.design_for`, i.e. the board design where the bundle fits
  it, and a :func:`~spikeforge.rtl.sizing.fitted` design with 32-bit membranes and 48-bit
  partial sums), twelve random networks on 4- and 8-PE designs, and the narrow-membrane
  random networks of :data:`NARROW_MEMBRANE_BITS` on designs whose membrane memories are
  just as narrow.

:func:`bundle_cases` adds a user's own bundle to either (``spikeforge regress --bundle``): one
case per PE count on the design every command builds for it, on seeded random images or on
the user's own.

:func:`run_case` runs one case on Verilator, Icarus (cocotb, ``sim/cosim.py``) or the
Amaranth simulator (``sim/harness.py``) and returns a :class:`CaseResult`. :func:`run_suite`
submits the cases to a Dask ``distributed`` cluster: an in-process ``LocalCluster`` by
default, or the scheduler at ``scheduler``. A build task per design comes first and the
cases of that design depend on it, so a design is built once however many cases use it;
each case task still asks the build cache (``build_design``), which on another machine of a
real cluster builds it there once.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..golden import network_from_parts, read_bundle
from ..golden.network import OUTPUT_MEMBRANE_BITS
from ..rtl.config import AcceleratorConfig
from .random_networks import random_input, random_network
from ..rtl.program import build_program
from ..rtl.sizing import (DEFAULT_BOARD, MemorySizes, design_for, fitted, for_board,
                          sizes_for)

__all__ = ["SUITES", "NARROW_MEMBRANE_BITS", "Case", "CaseResult", "suite", "shipped_bundles",
           "bundle_cases", "run_case", "run_suite"]

SUITES = ("quick", "full")
#: The shipped bundles the quick suite runs on the board design (64 PEs), with their image
#: counts, so that a change that breaks a real network on the design users build cannot land
#: green: a hyperspectral conv3d network (multiplicative leak) and an MNIST CNN (the
#: space-to-depth first layer with its fused max-pool, packed weight rows).
QUICK_ON_BOARD = (("indian_pines_hybrid", 2), ("mnist_vgg", 1))
_WIDTHS = {"w16": {}, "w32": {"membrane_bits": 32, "psum_bits": 48}}
#: The design the random networks run on (small maps, every feature switched on).
_RANDOM_DESIGN = {"membrane_bits": 32, "psum_bits": 48, "leak_multiplier": True,
                  "max_positions": 64, "weight_depth": 512, "spike_memory_bits": 8192,
                  "max_in_channels": 64, "max_out_channels": 64, "max_feature_size": 16}
#: The full suite's narrow-membrane cases: random networks whose membranes are this many bits
#: wide on the random design with membrane memories just as narrow (fully quantized SNNs keep
#: 3- and 4-bit membranes; saturation and the threshold's full range happen all the time), in
#: these shapes (a residual add and a 3D kernel over few membrane levels included).
NARROW_MEMBRANE_BITS = (3, 4)
_NARROW_TEMPLATES = ("conv2d", "linear", "residual", "conv3d", "pooled")


@dataclass(frozen=True)
class Case:
    """One network on one design.

    Members
    -------
    name : str
    bundle : str or None
        Path of a bundle; ``None`` for a random network.
    seed : int
        The random network's seed (its template is ``template``) and the images' seed.
    template : str or None
    config : AcceleratorConfig
    sizes : rtl.sizing.MemorySizes
    images : int
    fault : rtl.host_port.MembraneFault or None
        Tests only: run a design with this fault (it must fail).
    samples : numpy.ndarray or None
        The integer images to run instead of seeded random ones (``images`` of them).
    membrane_bits : int or None
        The random network's membrane width instead of the one its seed draws (the
        narrow-membrane cases, on a design whose membrane memory is that wide).
    output_membrane_bits : int or None
        The random network's output layer's own membrane width, if it has one.
    """

    name: str
    bundle: str | None
    seed: int
    template: str | None
    config: AcceleratorConfig
    sizes: MemorySizes
    images: int = 2
    fault: object = None
    samples: object = field(default=None, compare=False)
    membrane_bits: int | None = None
    output_membrane_bits: int | None = None

    def network(self):
        if self.bundle is not None:
            return read_bundle(self.bundle)
        return network_from_parts(*random_network(
            self.seed, self.template, membrane_bits=self.membrane_bits,
            output_membrane_bits=self.output_membrane_bits))

    def inputs(self, network):
        """The case's images: ``samples``, or seeded random integer images."""
        if self.samples is not None:
            return self.samples
        spec = {"input": {"shape": list(network.input.shape), "bits": network.input.bits}}
        return random_input(np.random.default_rng(self.seed), spec, self.images)

    @property
    def design(self):
        """What identifies the build: the config, the sizes and the fault."""
        return (self.config, self.sizes, self.fault)


@dataclass
class CaseResult:
    """What one case gave; ``failures`` lists one sentence per failed image."""

    name: str
    simulator: str
    images: int
    mismatches: int
    cycles: int | None
    predicted_cycles: int | None
    cycles_per_second: float | None
    seconds: float
    failures: list

    @property
    def passed(self):
        return not self.failures and self.cycles == self.predicted_cycles

    def to_json(self):
        return {"name": self.name, "simulator": self.simulator, "images": self.images,
                "mismatches": self.mismatches, "cycles": self.cycles,
                "predicted_cycles": self.predicted_cycles,
                "cycles_per_second": self.cycles_per_second}


def shipped_bundles():
    """The bundles shipped in ``spikeforge/models``, by name."""
    import spikeforge

    folder = Path(spikeforge.__file__).parent / "models"
    return sorted(folder.glob("*.sfb"))


def _random_cases(pes, count, images, skipped, membrane_bits=None):
    """``count`` random networks on a ``pes``-PE design; with ``membrane_bits``, networks and
    the design's membrane memory both that wide (the names end in ``-m<bits>``), and an
    ``OUTPUT_MEMBRANE_BITS``-wide output membrane memory, which every other network's output
    layer uses at that width (as narrow-membrane training writes it), the rest at theirs."""
    narrow = {} if membrane_bits is None else {"membrane_bits": membrane_bits}
    wide = {} if membrane_bits is None else {"output_membrane_bits": OUTPUT_MEMBRANE_BITS}
    config = AcceleratorConfig(pes=pes, **{**_RANDOM_DESIGN, **narrow, **wide})
    templates = ("conv2d", "linear") if membrane_bits is None else _NARROW_TEMPLATES
    suffix = "" if membrane_bits is None else f"-m{membrane_bits}"
    cases, seed = [], 0
    while len(cases) < count and seed < 20 * count:
        template = templates[seed % len(templates)]
        output = OUTPUT_MEMBRANE_BITS if membrane_bits is not None and len(cases) % 2 else None
        network = network_from_parts(*random_network(seed, template, **narrow,
                                                     output_membrane_bits=output))
        name = f"random{seed}-{template}-pes{pes}{suffix}"
        try:
            sizes = sizes_for(network, config)
            build_program(network, config, sizes)  # raises when the draw does not fit
        except ValueError as error:  # a draw the RTL does not run (ProgramError)
            skipped.append((name, str(error)))
        else:
            cases.append(Case(name, None, seed, template, config, sizes, images,
                              membrane_bits=membrane_bits, output_membrane_bits=output))
        seed += 1
    return cases


def suite(name):
    """The cases of suite ``name`` and the ``(case, reason)`` pairs left out.

    Raises
    ------
    ValueError
        ``name`` is not a suite.
    """
    if name not in SUITES:
        raise ValueError(f"Suite must be one of {', '.join(SUITES)}, not {name!r}")
    skipped = []
    if name == "quick":
        plan, pes_counts, widths, images = {"digits_snn"}, (8,), ("w16",), 3
        random = [(4, 4, 2)]
        narrow = []
    else:
        plan, pes_counts, widths, images = None, (8, 16, 64), tuple(_WIDTHS), 2
        random = [(4, 8, 3), (8, 4, 3)]
        narrow = [(4, 5, 2, bits) for bits in NARROW_MEMBRANE_BITS]
    cases = []
    for path in shipped_bundles():
        if plan is not None and path.stem not in plan:
            continue
        network = read_bundle(path)
        for pes in pes_counts:
            for width in widths:
                case_name = f"{path.stem}-pes{pes}-{width}"
                try:
                    fixed = _WIDTHS[width]
                    design = (fitted(network, pes=pes, **fixed) if fixed
                              else design_for(network, pes=pes))
                    config, sizes = design.config, design.sizes
                except ValueError as error:
                    skipped.append((case_name, str(error)))
                    continue
                cases.append(Case(case_name, str(path), 0, None, config, sizes, images))
    for pes, count, count_images in random:
        cases.extend(_random_cases(pes, count, count_images, skipped))
    for pes, count, count_images, bits in narrow:
        cases.extend(_random_cases(pes, count, count_images, skipped, membrane_bits=bits))
    if name == "quick":
        board = for_board(DEFAULT_BOARD)
        for stem, count_images in QUICK_ON_BOARD:
            path = next(p for p in shipped_bundles() if p.stem == stem)
            design = design_for(read_bundle(path), pes=board.config.pes)
            if design != board:
                raise ValueError(f"the quick suite's {stem} no longer fits the "
                                 f"{DEFAULT_BOARD} design")
            cases.append(Case(f"{stem}-{DEFAULT_BOARD}", str(path), 0, None,
                              design.config, design.sizes, count_images))
    return cases, skipped


def bundle_cases(path, *, pes_counts=(64,), samples=None, images=2):
    """The cases of the bundle at ``path``: one per PE count in ``pes_counts``, named
    ``<bundle stem>-pes<P>``, on :func:`~spikeforge.rtl.sizing.design_for`'s design, with
    the integer images ``samples`` (N, *input shape) or ``images`` seeded random ones.

    Raises
    ------
    BundleError
        ``path`` is not a valid bundle.
    ValueError
        The network runs on no design of one of the PE counts (``fits``'s reasons), or its
        program cannot be built.
    """
    network = read_bundle(path)
    cases = []
    for pes in pes_counts:
        design = design_for(network, pes=pes)
        build_program(network, design.config, design.sizes)  # a layer the RTL cannot run
        count = images if samples is None else int(samples.shape[0])
        cases.append(Case(f"{Path(path).stem}-pes{pes}", str(path), 0, None, design.config,
                          design.sizes, count, samples=samples))
    return cases


def _failure(image, text):
    return f"image {image}: {text}"


def _build(simulator, case, waves=False):
    from .cosim import build_design

    return build_design(simulator, case.config, case.sizes, fault=case.fault, waves=waves)


def run_case(case, simulator, *, waves_dir=None, build=None):
    """Run ``case`` on ``simulator``; return a :class:`CaseResult`.

    ``build`` is the case's design as built earlier (a :class:`~spikeforge.sim.cosim.Build`);
    it is used when its folder is on this machine, and the build cache is asked otherwise.

    A failed image's sentence is the harness's mismatch report (with the waveform written
    under ``waves_dir / case.name`` when ``waves_dir`` is given), a timeout, or a cycle
    count that differs from the cycle model's. A build or simulator failure fails every
    image of the case with its message.
    """
    began = time.perf_counter()
    network = case.network()
    images = case.inputs(network)
    waves = None if waves_dir is None else Path(waves_dir) / case.name
    try:
        if simulator == "amaranth":
            rows, seconds = _amaranth(case, network, images, waves)
        else:
            rows, seconds = _cosim(case, simulator, network, images, waves, build)
    except Exception as error:  # any failure of this case is its result; the suite goes on
        return CaseResult(case.name, simulator, len(images), len(images), None, None, None,
                          time.perf_counter() - began,
                          [f"{type(error).__name__}: {' '.join(str(error).split())}"])
    failures = []
    for row in rows:
        if row["mismatch"] is not None:  # the harness's report names the image already
            failures.append(row["mismatch"])
        elif row["cycles"] is None:
            failures.append(_failure(row["image"], "did not finish"))
        elif row["cycles"] != row["predicted_cycles"]:
            failures.append(_failure(row["image"], f"{row['cycles']} cycles, the cycle model "
                                                   f"predicts {row['predicted_cycles']}"))
        else:
            failures.extend(_failure(row["image"], f"{name} {row['counters'][name]}, the cycle "
                                                   f"model predicts {value}")
                            for name, value in row["predicted_counters"].items()
                            if row["counters"][name] != value)
    measured = [row["cycles"] for row in rows]
    cycles = None if None in measured else sum(measured)
    rate = None if cycles is None or seconds <= 0 else round(cycles / seconds)
    return CaseResult(case.name, simulator, len(rows),
                      sum(1 for row in rows if row["mismatch"] is not None
                          or row["cycles"] is None),
                      cycles, sum(row["predicted_cycles"] for row in rows), rate,
                      time.perf_counter() - began, failures)


def _amaranth(case, network, images, waves):
    from .harness import Harness

    harness = Harness(network, case.config, sizes=case.sizes, fault=case.fault)
    if waves is not None:
        waves.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results = harness.run_all(images, vcd_dir=waves)
    seconds = time.perf_counter() - began
    return [{"image": r.image, "cycles": r.cycles, "predicted_cycles": r.predicted_cycles,
             "counters": r.counters, "predicted_counters": r.predicted_counters,
             "mismatch": None if r.mismatch is None else str(r.mismatch)} for r in results], \
        seconds


def _cosim(case, simulator, network, images, waves, build):
    from .cosim import run_images

    if build is None or not build.usable():
        build = _build(simulator, case)
    summary = run_images(build, network, images, config=case.config, sizes=case.sizes,
                         waves_dir=waves, waves_build=lambda: _build(simulator, case, True))
    rows = [{"image": row["image"], "cycles": row["cycles"],
             "predicted_cycles": row["predicted_cycles"],
             "counters": row.get("counters", {}),
             "predicted_counters": row["predicted_counters"],
             "mismatch": None if row["mismatch"] is None else str(row["mismatch"])}
            for row in summary["images"]]
    return rows, summary["simulated_seconds"]


def _build_task(simulator, case):
    """Dask task: build (or find) the design of ``case``."""
    return case.name, _build(simulator, case)


def _case_task(case, simulator, waves_dir, built):
    # The cases of a design run on the build its build task made (the same RTL even if the
    # sources change meanwhile); on another machine the cache builds it there.
    return run_case(case, simulator, waves_dir=waves_dir,
                    build=None if built is None else built[1])


def run_suite(cases, simulator, *, jobs=2, scheduler=None, waves_dir=None, progress=None):
    """Run ``cases`` on a Dask cluster; return their :class:`CaseResult` in case order.

    ``scheduler`` is the address of a running scheduler (``tcp://host:8786``); without it an
    in-process ``LocalCluster`` with ``jobs`` single-threaded workers runs everything
    (threads: the simulators are child processes; for the Amaranth simulator, processes).
    ``progress(text)`` receives one line per finished build and case.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    report = progress or (lambda text: None)
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1,
                               processes=simulator == "amaranth", dashboard_address=":0")
        client = Client(cluster)
    else:
        client = Client(scheduler)  # distributed.comm.timeouts.connect bounds the wait
    try:
        workers = len(client.scheduler_info()["workers"])
        kind = "local cluster" if cluster is not None else f"cluster at {scheduler}"
        report(f"Dask {kind}: {workers} workers")
        builds = {}
        if simulator != "amaranth":
            for case in cases:
                if case.design not in builds:
                    builds[case.design] = client.submit(_build_task, simulator, case,
                                                        pure=False)
        # A case whose design is built runs before the next build starts (priority).
        futures = {client.submit(_case_task, case, simulator, waves_dir,
                                 builds.get(case.design), pure=False, priority=1): index
                   for index, case in enumerate(cases)}
        watched = list(builds.values()) + list(futures)
        results = [None] * len(cases)
        done = 0
        for future in as_completed(watched):
            value = future.result()
            if future in futures:
                done += 1
                results[futures[future]] = value
                report(_progress_line(done, len(cases), value))
            else:
                name, build = value
                state = "found in the cache" if build.reused else "built"
                report(f"design of {name}: {state} in {build.seconds:.0f} s")
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _progress_line(done, total, result):
    status = "pass" if result.passed else "FAIL"
    rate = "-" if result.cycles_per_second is None else f"{result.cycles_per_second:,}"
    return (f"[{done}/{total}] {result.name} ({result.simulator}): {status}, "
            f"{result.images} images, {result.mismatches} mismatches, {rate} cycles/s, "
            f"{result.seconds:.0f} s")
