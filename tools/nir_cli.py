"""``spikeforge nir import`` and ``spikeforge nir export``: NIR graphs in and out.

The work is :mod:`spikeforge.nir`'s; this module only parses, checks the request before
anything is read or written, and prints. Every refusal is one sentence (exit status 2).
"""

import json
from pathlib import Path

from spikeforge.golden import write_bundle
from spikeforge.golden.manifest import INPUT_BITS, TIMESTEPS

from .options import (
    CLIError, Output, add_bundle, add_json, in_range, load_bundle, positive_int, weight_bits,
)

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "NIR graphs in and out (nir import|export)"
DESCRIPTION = "NIR graphs in and out (docs/nir.md)."


_input_bits = in_range(INPUT_BITS, "input bits")


def add_arguments(parser):
    """Add the ``import`` and ``export`` sub-commands to the ``nir`` parser."""
    commands = parser.add_subparsers(dest="nir_command", metavar="COMMAND", required=True)
    read = commands.add_parser(
        "import", help="read a NIR graph into a bundle",
        description="Read a NIR 1.0 graph (.nir, HDF5) into a bundle. A graph spikeforge "
                    "exported comes back identical (its metadata fixes every option). Any other "
                    "graph is read from NIR's node equations at one Euler step per timestep; a "
                    "construct the integer contract cannot reproduce is refused with the node's "
                    "name and the reason (docs/nir.md).")
    read.add_argument("graph", type=Path, metavar="GRAPH.nir", help="the NIR graph to read")
    read.add_argument("--out", type=Path, required=True, metavar="BUNDLE",
                      help="bundle file to write (.sfb)")
    read.add_argument("--timesteps", type=positive_int, metavar="T",
                      help="timesteps per input, which NIR does not record (default 8)")
    read.add_argument("--input-bits", type=_input_bits, metavar="B",
                      help="unsigned bits of the integer input (default 8)")
    read.add_argument("--raw-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                      help="raw values that map to 0 and 2**B - 1 (default 0 1)")
    read.add_argument("--weight-bits", type=weight_bits, metavar="N",
                      help="weight bits; non-integer weights are scaled and rounded to N "
                           "bits, and the rounding is reported (default: refuse them)")
    read.add_argument("--approximate-leak", action="store_true",
                      help="round a leak that no contract leak reproduces to the nearest one "
                           "(reported) instead of refusing the graph")
    read.add_argument("--name", default="nir_import", help="network name (default nir_import)")
    add_json(read)

    write = commands.add_parser(
        "export", help="write a bundle as a NIR graph",
        description="Write BUNDLE as a NIR 1.0 graph under the convention of docs/nir.md (dt = "
                    "1; IF(r=1, v_threshold=theta-0.5, v_reset=0); the output layer as I(r=1); "
                    "SumPool2d; Scale nodes into fan-in adds; explicit integer padding) plus "
                    "spikeforge metadata for what NIR cannot express, and report per node "
                    "whether NIR's own semantics reproduce the golden model exactly.")
    add_bundle(write)
    write.add_argument("--out", type=Path, required=True, metavar="GRAPH.nir",
                       help="NIR file to write")
    write.add_argument("--strict", action="store_true",
                       help="refuse a bundle that NIR's own semantics do not reproduce exactly")
    add_json(write)


def _check_out(path, what):
    if path.is_dir():
        raise CLIError(f"the output {path} is a folder, not a {what} file")
    if not path.parent.is_dir():
        raise CLIError(f"the folder {path.parent} for the {what} does not exist")


def run(args):
    """Run ``nir import`` or ``nir export``; return the :class:`Output`."""
    from spikeforge.nir import NIRError

    try:
        return Output(_import(args) if args.nir_command == "import" else _export(args))
    except NIRError as error:
        raise CLIError(str(error)) from None


def _import(args):
    from spikeforge.nir import import_graph, load_graph

    if args.timesteps is not None and args.timesteps > TIMESTEPS[1]:
        raise CLIError(f"--timesteps {args.timesteps} is more than a bundle holds "
                       f"({TIMESTEPS[1]})")
    if args.raw_range is not None and not args.raw_range[1] > args.raw_range[0]:
        raise CLIError(f"--raw-range {args.raw_range[0]:g} {args.raw_range[1]:g} must have "
                       f"MAX greater than MIN")
    _check_out(args.out, "bundle")
    graph = load_graph(args.graph)
    network, report = import_graph(
        graph, timesteps=args.timesteps, input_bits=args.input_bits,
        raw_range=None if args.raw_range is None else tuple(args.raw_range),
        weight_bits=args.weight_bits, approximate_leak=args.approximate_leak,
        name=args.name)
    written = write_bundle(args.out, network)
    summary = {"bundle": str(args.out), "graph": str(args.graph), "source": report["source"],
               "name": written.name, "layers": [layer.name for layer in written.layers],
               "timesteps": written.timesteps, "membrane_bits": written.membrane_bits,
               "content_hash": written.content_hash, "notes": report["notes"]}
    if args.json:
        return json.dumps(summary, indent=2)
    origin = "spikeforge's own export" if report["source"] == "spikeforge" else "a NIR graph"
    lines = [f"wrote {args.out}: {len(written.layers)} layers from {origin} {args.graph}, "
             f"{written.timesteps} timesteps, {written.membrane_bits}-bit membrane"]
    return "\n".join(lines + [f"note: {note}" for note in report["notes"]])


def _export(args):
    from spikeforge.nir import write_graph

    _check_out(args.out, "graph")
    network, path = load_bundle(args.bundle)
    report = write_graph(network, args.out, strict=args.strict)
    summary = {"graph": str(args.out), "bundle": str(path), **report}
    if args.json:
        return json.dumps(summary, indent=2)
    inexact = [entry for entry in report["nodes"] if entry["notes"]]
    verdict = ("NIR's own semantics reproduce the golden model exactly" if not inexact else
               f"{len(inexact)} of {len(report['nodes'])} nodes need spikeforge's metadata to "
               f"reproduce the golden model")
    lines = [f"wrote {args.out}: {network.name}, {len(report['nodes'])} NIR nodes; {verdict}",
             f"{'node':<24} {'NIR':<10} exact"]
    for entry in report["nodes"]:
        lines.append(f"{entry['node']:<24} {entry['type']:<10} "
                     f"{'yes' if not entry['notes'] else 'no: ' + '; '.join(entry['notes'])}")
    return "\n".join(lines)
