"""``spikeforge regress``: the regression suite, its results table, JSON and JUnit XML.

The matrix and the runner are ``sim/regress.py``; this module checks the options, runs the
suite, prints one line per finished case on stderr while it runs, and formats the results:
a table (case, simulator, images, mismatches, cycles, predicted cycles, simulated cycles per
second), ``{"cases": [...]}`` for ``--json``, and a JUnit XML file (one test case per case,
the mismatch reports as its failure) that CI systems read. A case passes when no image
mismatches or times out and its measured cycles equal the cycle model's.
"""

import json
import time
from pathlib import Path
from xml.etree import ElementTree

from ..sim.regress import run_suite, suite
from .options import (
    CLIError, Output, add_json, add_simulator, check_pes, comma_list, load_bundle, one_line,
    positive_int,
)
from .progress import LineBar, wanted

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "check_simulator", "regress",
           "regress_lines", "regress_json", "write_junit"]



def check_simulator(simulator):
    """Raise ``SimulatorUnavailable`` (one sentence) when ``simulator`` is not installed."""
    if simulator == "amaranth":
        return
    from ..sim.cosim import check_simulator as check_cosim

    check_cosim(simulator)


def regress(suite_name, simulator, *, jobs=2, scheduler=None, waves_dir=None, log=None,
            extra=()):
    """Run suite ``suite_name`` (``"none"``: no suite) and the cases ``extra`` (the user's
    bundle, :func:`~spikeforge.sim.regress.bundle_cases`) on ``simulator``; return a summary
    dict.

    The summary holds ``results`` (:class:`~spikeforge.sim.regress.CaseResult` in matrix
    order, ``extra`` last), ``skipped`` (``(case, reason)`` left out of the matrix) and
    ``seconds``. ``log(text)`` gets the progress lines.
    """
    check_simulator(simulator)
    cases, skipped = suite(suite_name) if suite_name != "none" else ([], [])
    cases = [*cases, *extra]
    report = log or (lambda text: None)
    for name, reason in skipped:
        report(f"not in the matrix: {name}: {reason}")
    report(f"{suite_name} suite: {len(cases)} cases on {simulator}, "
           f"{len({case.design for case in cases})} designs")
    began = time.perf_counter()
    results = run_suite(cases, simulator, jobs=jobs, scheduler=scheduler, waves_dir=waves_dir,
                        progress=report)
    return {"suite": suite_name, "simulator": simulator, "results": results,
            "skipped": skipped, "seconds": time.perf_counter() - began}


def regress_json(summary):
    """``{"cases": [{"name", "simulator", "images", "mismatches", "cycles",
    "predicted_cycles", "cycles_per_second"}, ...]}``."""
    return {"cases": [result.to_json() for result in summary["results"]]}


def _number(value):
    return "-" if value is None else f"{value:,}"


def regress_lines(summary):
    """The results table, the failures and a closing line."""
    results = summary["results"]
    width = max([len("case")] + [len(r.name) for r in results])
    lines = [f"{'case':<{width}}  {'simulator':<9}  {'images':>6}  {'mismatches':>10}  "
             f"{'cycles':>11}  {'predicted':>11}  {'cycles/s':>9}  result"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.simulator:<9}  {r.images:>6}  {r.mismatches:>10}"
                     f"  {_number(r.cycles):>11}  {_number(r.predicted_cycles):>11}  "
                     f"{_number(r.cycles_per_second):>9}  {'pass' if r.passed else 'FAIL'}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        lines.extend(f"{r.name}: {failure}" for failure in r.failures)
    lines.append(f"{len(results) - len(failed)} of {len(results)} cases passed "
                 f"({summary['suite']} suite, {summary['simulator']}) in "
                 f"{summary['seconds']:.0f} s")
    return lines


def write_junit(path, summary):
    """Write the JUnit XML report of ``summary`` to ``path``."""
    results = summary["results"]
    failed = sum(1 for r in results if not r.passed)
    root = ElementTree.Element("testsuites")
    suite_element = ElementTree.SubElement(root, "testsuite", {
        "name": f"spikeforge-regress-{summary['suite']}", "tests": str(len(results)),
        "failures": str(failed), "errors": "0", "skipped": "0",
        "time": f"{summary['seconds']:.3f}"})
    for r in results:
        case = ElementTree.SubElement(suite_element, "testcase", {
            "classname": f"regress.{r.simulator}", "name": r.name, "time": f"{r.seconds:.3f}"})
        if not r.passed:
            failures = r.failures or [f"{r.cycles} cycles, the cycle model predicts "
                                      f"{r.predicted_cycles}"]
            failure = ElementTree.SubElement(case, "failure", {"message": failures[0]})
            failure.text = "\n".join(failures)
        out = ElementTree.SubElement(case, "system-out")
        out.text = (f"images={r.images} mismatches={r.mismatches} cycles={r.cycles} "
                    f"predicted_cycles={r.predicted_cycles} "
                    f"cycles_per_second={r.cycles_per_second}")
    ElementTree.indent(root)
    Path(path).write_bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
                           + b"\n")


# ------------------------------------------------------------------------- the command

HELP = "regression suite: the Verilog (or Amaranth) RTL vs the golden model"
DESCRIPTION = ("Run the declared regression matrix (shipped bundles x PE counts x widths, and "
               "seeded random networks, the full suite's also with 3- and 4-bit membranes on "
               "equally narrow membrane memories, on seeded random images) on Dask: every "
               "membrane write and spike is checked against the golden model, and every "
               "image's cycle count against the cycle model. Prints a results table (or "
               "--json), writes a JUnit XML file, shows progress on stderr, and exits with "
               "status 1 if any case fails. A failing image's waveform is written under "
               "--waves.")


def add_arguments(parser):
    parser.add_argument("--suite", choices=("quick", "full", "none"), default="quick",
                        help="quick (CI, three designs), full, or none (only the --bundle "
                             "cases) (default quick)")
    parser.add_argument("--bundle", type=Path, metavar="BUNDLE",
                        help="add your bundle to the matrix: one case per --pes count, named "
                             "<bundle stem>-pes<P>, on the design every command builds for it")
    parser.add_argument("--inputs", type=Path, metavar="FILE",
                        help="run the --bundle cases on these raw samples (.npy, or .npz with "
                             "x) instead of 2 seeded random images")
    parser.add_argument("--pes", type=comma_list(positive_int), metavar="P,P",
                        help="PE counts of the --bundle cases (default 64, the board's)")
    add_simulator(parser, "verilator")
    parser.add_argument("--jobs", type=positive_int, default=2, metavar="N",
                        help="workers of the local Dask cluster (default 2)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster at ADDRESS (tcp://host:8786) instead")
    parser.add_argument("--junit", type=Path, default=Path("spikeforge-regress.xml"),
                        metavar="FILE",
                        help="JUnit XML report (default spikeforge-regress.xml)")
    parser.add_argument("--waves", type=Path, default=Path("regress-waves"), metavar="DIR",
                        help="waveforms of failing images (default regress-waves)")
    add_json(parser, '{"cases": [...]} instead of the table')


def _bundle_cases(args):
    """The cases ``--bundle`` adds to the regression (checked before any work)."""
    from spikeforge.golden import quantize_input
    from spikeforge.sim.regress import bundle_cases

    from .inputs import load_inputs

    if args.bundle is None:
        if args.suite == "none":
            raise CLIError("--suite none runs only the --bundle cases; pass --bundle")
        given = [option for option, value in (("--inputs", args.inputs), ("--pes", args.pes))
                 if value is not None]
        if given:
            raise CLIError(f"{given[0]} applies to the --bundle cases; pass --bundle")
        return ()
    pes_counts = args.pes or (64,)
    for pes in pes_counts:
        check_pes(pes)
    network, path = load_bundle(args.bundle)
    samples = None
    if args.inputs is not None:
        samples = quantize_input(load_inputs(args.inputs, network).x, network.input)
    try:
        return bundle_cases(path, pes_counts=pes_counts, samples=samples)
    except ValueError as error:   # no design runs the network, or its program fails
        raise CLIError(one_line(error)) from None


def run(args):
    from spikeforge.sim.cosim import SimulatorUnavailable

    if not args.junit.parent.is_dir():
        raise CLIError(f"the folder {args.junit.parent} for the JUnit report does not exist")
    extra = _bundle_cases(args)
    try:
        with LineBar("regress", enabled=wanted(args.json), unit="case") as log:
            summary = regress(args.suite, args.simulator, jobs=args.jobs,
                              scheduler=args.scheduler, waves_dir=args.waves.resolve(), log=log,
                              extra=extra)
    except SimulatorUnavailable as error:
        raise CLIError(str(error)) from None
    except (OSError, TimeoutError) as error:
        if args.scheduler is None:
            raise
        raise CLIError(f"could not reach the Dask scheduler at {args.scheduler} "
                       f"({one_line(error)})") from None
    write_junit(args.junit, summary)
    failed = int(any(not result.passed for result in summary["results"]))
    if args.json:
        return Output(json.dumps(regress_json(summary), indent=2), failed)
    return Output("\n".join(regress_lines(summary) + [f"JUnit XML: {args.junit}"]), failed)
