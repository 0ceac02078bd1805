"""The MNIST recipe with quantization-aware pruning (``spikeforge train mnist-vgg --prune S``).

:func:`train_mnist_pruned` runs :func:`spikeforge.train.mnist.train_mnist` with the pruning
rounds of :func:`spikeforge.train.prune.prune_qat` between its quantization-aware training and
its export, so the bias calibration and the golden-model evaluation see the pruned network.
"""

from dataclasses import asdict

from spikeforge import golden

from . import prune_metrics
from .prune import RANKINGS, prune_qat, report_lines

__all__ = ["train_mnist_pruned"]


def train_mnist_pruned(preset, out, mnist_config, prune_config, *, data_dir, log=print,
                       extra_metadata=None):
    """The MNIST recipe with quantization-aware pruning after its QAT phase.

    Trains like :func:`spikeforge.train.mnist.train_mnist` (whose bias calibration and golden
    evaluation then run on the pruned network), records ``metadata["pruning"]`` (the config and
    one row per round, the last with the SNN's golden ``snn_accuracy`` on the test set) and
    names the bundle ``<preset bundle>_pruned``. Returns the :class:`MnistRun`.
    """
    from .mnist import INPUT_SPEC, train_mnist

    record = {}

    def refine(net, data):
        rows = prune_qat(net, {**data, "input_spec": INPUT_SPEC}, prune_config, log=log)
        record.update(asdict(prune_config), schedule=[row["target"] for row in rows[1:]],
                      score=RANKINGS[prune_config.mode], rounds=rows)
        return {"pruning": record, "val_qrelu_accuracy": rows[-1]["val_accuracy"]}

    run = train_mnist(preset, out, mnist_config, data_dir=data_dir, log=log,
                      extra_metadata=extra_metadata, refine=refine)
    manifest, arrays = golden.network_to_parts(run.network)
    measured = prune_metrics.weight_sparsity(run.network)
    if round(measured, 6) != record["rounds"][-1]["sparsity"]:
        raise RuntimeError(f"the bundle's weight sparsity {measured} differs from the last "
                           f"round's {record['rounds'][-1]['sparsity']}: a mask was lost")
    record["rounds"][-1]["snn_accuracy"] = run.snn_accuracy
    record["layer_sparsity"] = {k: round(v, 6) for k, v in
                                prune_metrics.layer_sparsity(run.network).items()}
    manifest["metadata"]["pruning"] = record
    manifest["name"] = f"{manifest['name']}_pruned"
    run.network = golden.write_bundle(out, manifest, arrays)
    for line in report_lines(record):
        log(line)
    return run
