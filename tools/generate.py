"""``spikeforge generate``: the accelerator's Verilog, manifest and memory images in a folder.

The source is a model bundle (``.sfb``: the design is ``rtl.sizing.design_for`` with
``--pes`` PEs, the one every command builds for the bundle, and the program's ``$readmemh``
files are written too), an accelerator config (``AcceleratorConfig.to_json``, with the
default memory sizes) or a design manifest written by an earlier ``generate`` (its config and
memory sizes). The same source and options give
byte-identical files: nothing in them depends on the time, the paths or the order of a set.

The output folder is written whole or not at all: the files go to a temporary folder beside
it, which then replaces it. An output folder that exists and holds files is refused unless
``force`` is given. A design whose memories exceed :data:`MAX_MEMORY_BITS` is refused before
anything is elaborated.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from spikeforge.golden import read_bundle

from ..rtl.config import AcceleratorConfig
from ..rtl.program import ProgramError
from ..rtl.sizing import MemorySizes, design_for
from ..sim.verilog import write_design
from .options import add_json, add_out_folder, check_output_folder, check_pes, positive_int, printed

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "MAX_MEMORY_BITS", "GenerateError",
           "generate", "generate_lines", "json_error", "memory_bits"]

#: The most on-chip memory a generated design may have: the block RAM of the largest
#: Zynq-7000 device (xc7z100, 755 RAMB36 of 36 kbit). A design beyond it fits no chip of the
#: family, and elaborating its memories would take the Verilog generator a very long time.
MAX_MEMORY_BITS = 755 * 36 * 1024


class GenerateError(ValueError):
    """The source cannot be generated; the message is one sentence."""


def json_error(path, error):
    """One sentence for a config file that is not valid JSON: the file, the error, its line."""
    return (f"the config {path} is not valid JSON: {error.msg} (line {error.lineno}, column "
            f"{error.colno})")


def _read_json(path):
    """The JSON object in ``path``; ``None`` when it is not JSON text (a bundle).

    A file that starts like JSON (``{`` or ``[``) but does not parse is a broken config.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if text.lstrip()[:1] in ("{", "["):
            raise GenerateError(json_error(path, error)) from None
        return None


def memory_bits(config, sizes):
    """Bits of each memory of the design (``docs/accelerator.md`` section 2), as a dict."""
    lanes = config.pes
    return {
        "weights": config.weight_depth * lanes * config.weight_bits,
        "partial sums": 2 * config.max_positions * lanes * config.psum_bits,
        "membranes": config.max_positions * lanes * config.membrane_bits,
        **({"output membranes": config.output_membrane_rows * lanes * config.core_membrane_bits}
           if config.separate_output_membranes else {}),
        "spike bitmaps": config.spike_bitmaps * config.spike_memory_bits,
        "biases": sizes.bias_depth * lanes * config.psum_bits,
        "pixels": sizes.pixel_depth * sizes.pixel_bits,
    }


def _check_size(config, sizes, network):
    memories = memory_bits(config, sizes)
    total = sum(memories.values())
    if total > MAX_MEMORY_BITS:
        what = f"the design for {network.name!r}" if network is not None else "the design"
        parts = ", ".join(f"{name} {bits:,}" for name, bits in memories.items())
        raise GenerateError(f"{what} needs {total:,} bits of memory ({parts}), more than the "
                            f"{MAX_MEMORY_BITS:,} bits of the largest Zynq-7000 (xc7z100, 755 "
                            f"RAMB36) that generate accepts")


def _design(source, pes):
    """``(config, sizes, network or None)`` of a bundle, config or design manifest."""
    obj = _read_json(source)
    if obj is None:  # not JSON: a bundle (read_bundle names what is wrong with it)
        network = read_bundle(source)
        try:
            design = design_for(network, pes=64 if pes is None else pes)
            return design.config, design.sizes, network
        except ValueError as error:
            raise GenerateError(str(error)) from None
    if pes is not None:
        raise GenerateError(f"--pes applies to a bundle; the config {source} fixes the PE "
                            f"count")
    if isinstance(obj, dict) and obj.get("format") == "spikeforge-design":
        obj, sizes = obj.get("config"), obj.get("sizes")
        try:
            sizes = MemorySizes.from_json(sizes)
        except (TypeError, ValueError):
            raise GenerateError(f"the design manifest {source} has no valid memory "
                                f"sizes") from None
    else:
        sizes = MemorySizes()
    try:
        return AcceleratorConfig.from_json(obj), sizes, None
    except (TypeError, ValueError) as error:
        raise GenerateError(f"{source} is not an accelerator config: "
                            f"{' '.join(str(error).split())}") from None


def generate(source, out_dir, *, pes=None, force=False):
    """Generate the design of ``source`` into ``out_dir``; return a summary dict.

    ``out_dir`` is replaced as a whole; one that exists and holds files needs ``force``.

    Raises
    ------
    GenerateError
        ``out_dir`` is not empty (without ``force``), the source is not a usable config, its
        network fits no design, or the design exceeds :data:`MAX_MEMORY_BITS`.
    BundleError
        The source is not JSON and not a valid bundle.
    """
    began = time.perf_counter()
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise GenerateError(f"the output folder {out} exists and is not empty; pass --force to "
                            f"replace it as a whole")
    here = Path.cwd().resolve()
    if out.is_dir() and (out.resolve() == here or out.resolve() in here.parents):
        raise GenerateError(f"the output folder {out} holds the current directory; it cannot "
                            f"be replaced, choose a folder below it")
    config, sizes, network = _design(source, pes)
    _check_size(config, sizes, network)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.absolute().parent))
    try:
        try:
            paths = write_design(temporary, config, sizes, network=network)
        except ProgramError as error:
            raise GenerateError(str(error)) from None
        files = {path.name: path.stat().st_size for path in paths}
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)   # mkdtemp makes it private (0700)
        if out.is_dir():
            shutil.rmtree(out)
        os.rename(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return {
        "out": str(out_dir), "network": None if network is None else network.name,
        "config": config.to_json(), "sizes": sizes.to_json(),
        "files": files,
        "seconds": round(time.perf_counter() - began, 3),
    }


def generate_lines(summary):
    """The human-readable report of :func:`generate`'s summary."""
    config = summary["config"]
    what = f" for {summary['network']}" if summary["network"] else ""
    lines = [f"wrote {summary['out']}{what}: {config['pes']} PEs, {config['weight_bits']}-bit "
             f"weights, {config['membrane_bits']}-bit membranes, {config['psum_bits']}-bit "
             f"partial sums, in {summary['seconds']:.1f} s"]
    lines.extend(f"  {name:<22} {size:>10,} bytes" for name, size in summary["files"].items())
    return lines



# ------------------------------------------------------------------------- the command

HELP = "write the accelerator's Verilog, manifest and memory images"
DESCRIPTION = ("Write SOURCE's accelerator as Verilog (amaranth.back.verilog), a JSON manifest "
               "(config, memory sizes, ports, host memory map) and, for a bundle, the $readmemh "
               "images of its weight, bias and descriptor memories. SOURCE is a bundle (.sfb: "
               "the PYNQ-Z2 board design when the bundle fits it, as simulate and build use, "
               "else a design sized to fit it), an accelerator config JSON or a manifest.json "
               "from an earlier run. The same SOURCE gives byte-identical files.")


def add_arguments(parser):
    parser.add_argument("source", type=Path, nargs="?", metavar="SOURCE",
                        help="bundle (.sfb), accelerator config or design manifest (JSON); "
                             "default: the shipped digits model")
    add_out_folder(parser)
    parser.add_argument("--pes", type=positive_int, metavar="P",
                        help="processing elements, for a bundle (default 64)")
    parser.add_argument("--force", action="store_true",
                        help="replace DIR as a whole when it exists and is not empty (without "
                             "it such a DIR is refused)")
    add_json(parser)


def run(args):
    from ..data.evaluate import default_bundle_path
    from .options import CLIError

    check_output_folder(args.out)
    source = default_bundle_path() if args.source is None else args.source
    if not source.is_file():
        raise CLIError(f"the source {source} does not exist")
    check_pes(args.pes)
    try:
        summary = generate(source, args.out, pes=args.pes, force=args.force)
    except GenerateError as error:
        raise CLIError(str(error)) from None
    return printed(args, summary, generate_lines)
