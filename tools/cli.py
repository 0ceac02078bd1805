"""The ``spikeforge`` command line (entry point ``spikeforge = spikeforge.tools.cli:main``).

The commands are registered in :data:`COMMANDS`, each implemented by one module of this
package (its options and its handler); what they share (the usage error, argument types,
the common options, the checks before any work) is ``tools/options.py``. ``spikeforge
--help`` lists them with a typical session. ``train`` imports PyTorch only when it runs
(``regress`` and ``bench sim`` import cocotb and Dask only when they run), so the other
commands work without them. Every problem with the user's input (a missing, truncated or
invalid bundle or dataset file, a bad option) ends the program with one line ``spikeforge:
error: <sentence>`` on stderr and exit status 2, checked before any long work (output
locations too: they must be writable); output is written only once it is complete, so a
failing run never leaves half a table or half a JSON object. ``--inputs FILE``
(``tools/inputs.py``) runs the user's own samples instead of a test split; ``spikeforge
--version`` prints the version.
"""


import argparse
import importlib
import sys

from spikeforge import __version__

from .options import EXIT_USAGE, USER_ERRORS, Parser, one_line

__all__ = ["main", "build_parser", "COMMANDS"]

_EPILOG = """\
typical session:
  spikeforge bundle info                      # layers and widths of the shipped digits model
  spikeforge golden --dataset digits          # its accuracy and op counts (golden model)
  spikeforge bundle info my_net.sfb --json    # any bundle, machine-readable
  spikeforge golden my_net.sfb --dataset mnist --limit 1000 --json > golden.json
  spikeforge bench golden                     # golden model vs snnTorch, images per second
  spikeforge train mnist-vgg --out vgg.sfb    # train a preset and write its bundle
  spikeforge simulate --dataset digits --images 20   # RTL vs golden, cycle by cycle
  spikeforge energy --dataset digits          # CNN vs SNN energy, PIM vs MAC first layer
  spikeforge generate --pes 8 --out build/    # the shipped model's Verilog and memory images
  spikeforge regress --suite quick --json     # the Verilog under cocotb/Verilator vs golden
  spikeforge synth --board pynq-z2 --pes 4    # LUT/FF/BRAM/DSP of the xc7z020 (yosys)
  spikeforge build --board pynq-z2 --top ps --out build/pynq   # Vivado project, PYNQ overlay
  spikeforge nir export --out digits.nir      # the bundle as a NIR graph (nir import: back)
  spikeforge report --dataset digits --out report/   # HTML page, PNG figures, report.json

BUNDLE defaults to the model shipped in the package (spikeforge/models/digits_snn.sfb).
Datasets are read from --data-dir, by default ../shared/datasets next to the current
directory or next to the repository. Errors print one line and exit with status 2;
simulate and regress exit with status 1 when the RTL disagrees with the golden model.
"""

#: The commands: name -> the module of ``spikeforge.tools`` that implements it (``HELP``,
#: ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args)``, see ``tools/options.py``), or
#: for a group of sub-commands, name -> ``(help, {sub-command: module})``.
COMMANDS = {
    "bundle": ("inspect a model bundle (bundle info BUNDLE)", {"info": "bundle_info"}),
    "golden": "golden_run",
    "bench": ("benchmarks (bench golden|sim|pim|throughput)",
              {"golden": "bench", "sim": "bench_sim", "pim": "bench_pim",
               "throughput": "bench_throughput"}),
    "train": "train_presets",
    "simulate": "simulate",
    "energy": "energy",
    "sweep": ("accuracy sweeps (sweep membrane)", {"membrane": "sweep"}),
    "generate": "generate",
    "regress": "regress",
    "build": "build",
    "synth": "synth",
    "nir": "nir_cli",
    "report": "report_page",
}


def _add_command(commands, name, module_name):
    module = importlib.import_module(f"{__package__}.{module_name}")
    parser = commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)


def build_parser():
    """The argparse parser of the whole program, from :data:`COMMANDS`."""
    parser = Parser(prog="spikeforge", epilog=_EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="The spikeforge tools: train or import an integer SNN, run its "
                                "bit-exact golden model, simulate and verify the accelerator "
                                "RTL against it, and generate the Verilog, the PYNQ-Z2 project "
                                "and reports.")
    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, entry in COMMANDS.items():
        if isinstance(entry, str):
            _add_command(commands, name, entry)
            continue
        help_text, members = entry
        group = commands.add_parser(name, help=help_text, description=help_text[0].upper()
                                    + help_text[1:] + ".")
        sub = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
        for member, module_name in members.items():
            _add_command(sub, member, module_name)
    return parser


def main(argv=None):
    """Run the program on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from .bench import BenchUnavailable

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        output = args.run(args)
    except (*USER_ERRORS, BenchUnavailable, OSError) as error:
        # OSError: unreadable paths and the like, named by the OS message.
        sys.stderr.write(f"spikeforge: error: {one_line(error)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("spikeforge: interrupted\n")
        return 130
    text = output.text
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    return output.status


if __name__ == "__main__":
    sys.exit(main())
