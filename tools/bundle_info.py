"""``spikeforge bundle info``: a bundle's header and layer table (``tools/report.py``)."""

from .options import add_bundle, add_json, load_bundle, printed

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "header and layer table of a bundle"
DESCRIPTION = ("Print a bundle's header (name, format, hash, timesteps, widths, dataset, "
               "metadata) and a table of its layers.")


def add_arguments(parser):
    add_bundle(parser)
    add_json(parser, "one JSON object instead")


def run(args):
    from .report import bundle_info, bundle_info_lines, manifest_version

    network, path = load_bundle(args.bundle)
    version = manifest_version(path)
    return printed(args, bundle_info(network, path, version),
                   lambda _: bundle_info_lines(network, path, version))
