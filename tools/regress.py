"""``spikeforge regress``: the regression suite, its results table, JSON and JUnit XML.

The matrix and the runner are ``sim/regress.py``; this module checks the options, runs the
suite, prints one line per finished case on stderr while it runs, and formats the results:
a table (case, simulator, images, mismatches, cycles, predicted cycles, simulated cycles per
second), ``{"cases": [...]}`` for ``--json``, and a JUnit XML file (one test case per case,
the mismatch reports as its failure) that CI systems read. A case passes when no image
mismatches or times out and its measured cycles equal the cycle model's.
"""

import time
from pathlib import Path
from xml.etree import ElementTree

from ..sim.regress import run_suite, suite

__all__ = ["SIMULATORS", "check_simulator", "regress", "regress_lines", "regress_json",
           "write_junit"]

SIMULATORS = ("verilator", "icarus", "amaranth")


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
