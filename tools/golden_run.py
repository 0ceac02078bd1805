"""``spikeforge golden``: the golden model's accuracy and op counts on a test split."""

import sys

from .options import (
    add_bundle, add_data_dir, add_dataset, add_inputs, add_json, load_bundle, positive_int,
    printed, samples_for,
)

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "accuracy and op counts of the golden model on a test split"
DESCRIPTION = ("Run the bit-exact golden model on a dataset's test split and print the "
               "accuracy, first-layer MACs, synaptic ops and spikes (total, per layer, per "
               "image). digits uses the split recorded in the bundle; mnist the official t10k "
               "files; a hyperspectral bundle rebuilds its recorded split and adds OA / AA / "
               "kappa.")


def add_arguments(parser):
    add_bundle(parser)
    add_dataset(parser)
    add_inputs(parser)
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="use only the first N test images (all when N exceeds them)")
    parser.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                        help="images per golden-model call (default 256)")
    add_data_dir(parser)
    add_json(parser, "one JSON object (accuracy is a fraction 0..1)")


class _Progress:
    """Carriage-return progress on stderr, only for interactive terminals."""

    def __init__(self, enabled):
        self.enabled = enabled and sys.stderr.isatty()
        self.shown = False

    def __call__(self, done, total):
        if self.enabled:
            sys.stderr.write(f"\rgolden: {done}/{total} images")
            sys.stderr.flush()
            self.shown = True

    def close(self):
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _lines(summary):
    from .report import golden_lines

    lines = golden_lines(summary)
    metrics = summary.get("classification")
    if metrics is not None:
        lines.insert(3, f"OA/AA/kappa {100 * metrics['oa']:.2f} % / {100 * metrics['aa']:.2f} % "
                        f"/ {100 * metrics['kappa']:.2f} %")
    return lines


def run(args):
    from .report import golden_result

    network, _ = load_bundle(args.bundle)
    test = samples_for(args, network)
    count = test.x.shape[0] if args.limit is None else min(args.limit, test.x.shape[0])
    progress = _Progress(enabled=not args.json)
    try:
        summary = golden_result(network, test, count, batch_size=args.batch_size,
                                progress=progress, predictions=args.inputs is not None)
    finally:
        progress.close()
    return printed(args, summary, _lines)
