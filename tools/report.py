"""Plain-text tables and JSON-ready dicts for the ``spikeforge`` command line.

Every function here is pure: it turns a :class:`~spikeforge.golden.Network` or an
:class:`~spikeforge.data.evaluate.Evaluation` into lines of text or a dict of JSON types,
so the CLI can build its whole output before writing a single byte.
"""

import json
import zipfile

__all__ = [
    "table",
    "manifest_version",
    "describe_neuron",
    "bundle_info",
    "bundle_info_lines",
    "golden_summary",
    "golden_result",
    "golden_lines",
]


def table(headers, rows, align=None):
    """Format ``rows`` (lists of values) under ``headers`` as aligned text lines.

    ``align`` is one character per column, ``"<"`` or ``">"`` (default: numbers right).
    """
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row]
                                           for row in rows]
    if align is None:
        align = [">" if rows and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool)
                                     for r in rows) else "<" for i in range(len(headers))]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        line = "  ".join(f"{value:{align[i]}{widths[i]}}" for i, value in enumerate(row))
        lines.append(line.rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def manifest_version(path):
    """The ``format_version`` stored in a bundle that :func:`read_bundle` already accepted."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("manifest.json")).get("format_version")


def describe_neuron(neuron):
    """Short text of a layer's neuron: ``theta=64 leak=shift>>4 reset=subtract v0=half``."""
    if neuron is None:
        return None
    leak = neuron.leak
    if leak.kind == "shift":
        leak_text = f"shift>>{leak.shift}"
    elif leak.kind == "mul":
        leak_text = f"mul*{leak.factor}>>{leak.frac_bits}"
    else:
        leak_text = "none"
    shift = f" I>>{neuron.current_shift}" if neuron.current_shift else ""
    if neuron.threshold is None:
        width = "" if neuron.membrane_bits is None else f" {neuron.membrane_bits}-bit membrane"
        return f"no firing, leak={leak_text}{shift}{width}"
    return (f"theta={neuron.threshold} leak={leak_text} reset={neuron.reset} "
            f"v0={neuron.v_init}{shift}")


def _output_width_text(network):
    """``; output layer 8`` when the output layer has its own membrane width, else ``""``."""
    own = network.output_layer.neuron.membrane_bits
    return "" if own is None else f"; output layer {own}"


def _memory_text(bits):
    """``weights 74.2 KB, biases 1.3 KB, membranes 30.0 KB`` (1 KB = 1024 bytes)."""
    return ", ".join(f"{kind} {value / 8192:.1f} KB" for kind, value in bits.items())


def _layer_params(layer):
    if not layer.is_synaptic:
        return 0
    return int(layer.weight.size + (0 if layer.bias is None else layer.bias.size))


def bundle_info(network, path, version):
    """JSON-ready description of a bundle: header fields plus one dict per layer."""
    layers = []
    for layer in network.layers:
        neuron = layer.neuron
        layers.append({
            "name": layer.name, "type": layer.type, "inputs": list(layer.inputs),
            "output": layer.output, "out_shape": list(layer.out_shape),
            "weight_bits": layer.weight_bits, "bias_bits": layer.bias_bits,
            "parameters": _layer_params(layer),
            "threshold": None if neuron is None else neuron.threshold,
            "leak": None if neuron is None else neuron.leak.to_json(),
            "reset": None if neuron is None or neuron.threshold is None else neuron.reset,
            "v_init": None if neuron is None or neuron.threshold is None else neuron.v_init,
            "current_shift": None if neuron is None else neuron.current_shift,
            "membrane_bits": None if neuron is None else network.layer_membrane_bits(layer),
        })
    return {
        "path": str(path), "name": network.name, "format_version": version,
        "content_hash": network.content_hash, "timesteps": network.timesteps,
        "membrane_bits": network.membrane_bits,
        "input": {"shape": list(network.input.shape), "bits": network.input.bits,
                  "raw_min": network.input.raw_min, "raw_max": network.input.raw_max},
        "parameters": int(network.parameter_count()), "classes": network.num_classes,
        "memory_bits": network.memory_bits(),
        "dataset": network.dataset, "metadata": network.metadata, "layers": layers,
    }


def _compact(value):
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def _abbreviated(value, longest=8):
    """``value`` with every list longer than ``longest`` replaced by ``"<N values>"``: a
    hyperspectral bundle's PCA matrix would otherwise fill the screen (``--json`` keeps it)."""
    if isinstance(value, dict):
        return {key: _abbreviated(item, longest) for key, item in value.items()}
    if isinstance(value, list):
        if len(value) > longest:
            return f"<{len(value)} values>"
        return [_abbreviated(item, longest) for item in value]
    return value


def bundle_info_lines(network, path, version):
    """Human-readable ``bundle info``: header lines, then the layer table."""
    spec = network.input
    lines = [
        f"bundle         {path}",
        f"name           {network.name}",
        f"format         version {version}",
        f"content hash   {network.content_hash}",
        f"timesteps      {network.timesteps}",
        f"membrane bits  {network.membrane_bits} (signed, saturating)"
        + _output_width_text(network),
        f"input          shape {tuple(spec.shape)}, {spec.bits}-bit unsigned, raw "
        f"{spec.raw_min:g}..{spec.raw_max:g}",
        f"parameters     {network.parameter_count()}",
        f"memory         {_memory_text(network.memory_bits())}",
        f"classes        {network.num_classes}",
    ]
    dataset = network.dataset
    if dataset:
        lines.append(f"dataset        {_compact(_abbreviated(dataset))}")
    for key in sorted(network.metadata):
        lines.append(f"metadata       {key} = {_compact(_abbreviated(network.metadata[key]))}")
    rows = []
    for layer in network.layers:
        rows.append([layer.name, f"{layer.type}->{layer.output}", ",".join(layer.inputs),
                     "x".join(map(str, layer.out_shape)), layer.weight_bits, layer.bias_bits,
                     _layer_params(layer), describe_neuron(layer.neuron)])
    lines.append("")
    lines += table(["layer", "type", "inputs", "out shape", "w bits", "b bits", "params",
                    "neuron"], rows, align="<<<>>>><")
    return lines


def golden_summary(network, evaluation, dataset, description):
    """JSON-ready result of ``spikeforge golden`` (see the CLI help for the keys)."""
    images = evaluation.images

    def per_image(value):
        return None if value is None or not images else value / images

    layers = []
    for counts in evaluation.layers:
        rate = None
        if counts.spikes is not None and images:
            rate = counts.spikes / (counts.neurons * evaluation.timesteps * images)
        layers.append({"name": counts.name, "type": counts.type, "neurons": counts.neurons,
                       "synaptic_ops": counts.synaptic_ops, "spikes": counts.spikes,
                       "synaptic_ops_per_image": per_image(counts.synaptic_ops),
                       "spikes_per_image": per_image(counts.spikes),
                       "spike_rate": rate})
    return {
        "bundle": {"name": network.name, "content_hash": network.content_hash},
        "dataset": dataset, "description": description,
        "images": images, "correct": evaluation.correct, "accuracy": evaluation.accuracy,
        "timesteps": evaluation.timesteps,
        "first_layer_macs": evaluation.first_layer_macs,
        "synaptic_ops": evaluation.synaptic_ops, "spikes": evaluation.spikes,
        "per_image": {"first_layer_macs": per_image(evaluation.first_layer_macs),
                      "synaptic_ops": per_image(evaluation.synaptic_ops),
                      "spikes": per_image(evaluation.spikes)},
        "per_layer": layers,
    }


def golden_result(network, test, count, *, batch_size=256, progress=None, predictions=False):
    """What ``spikeforge golden --json`` prints for the first ``count`` samples of ``test``.

    :func:`golden_summary` of :func:`~spikeforge.data.evaluate.evaluate`, plus
    ``classification`` (OA, AA, kappa) for a hyperspectral test set, and with
    ``predictions`` the predicted class of every sample. ``spikeforge report`` calls this same
    function, so its numbers are the ``golden`` command's.
    """
    from ..data.evaluate import class_metrics, evaluate

    labels = None if test.y is None else test.y[:count]
    evaluation = evaluate(network, test.x[:count], labels, batch_size=batch_size,
                          progress=progress)
    summary = golden_summary(network, evaluation, test.name, test.description)
    metrics = class_metrics(test, evaluation)   # hyperspectral scenes: OA, AA, kappa
    if metrics is not None:
        summary["classification"] = metrics
    if predictions:
        summary["predictions"] = evaluation.predictions.tolist()
    return summary


def _fmt(value, digits=1):
    if value is None:
        return None
    return f"{value:.{digits}f}" if isinstance(value, float) else value


def golden_lines(summary):
    """Human-readable ``spikeforge golden`` output built from :func:`golden_summary`."""
    per_image = summary["per_image"]
    lines = [
        f"bundle      {summary['bundle']['name']} ({summary['bundle']['content_hash']})",
        f"dataset     {summary['description']}",
        f"accuracy    {summary['accuracy'] * 100:.2f} % ({summary['correct']}/"
        f"{summary['images']} images, T={summary['timesteps']})" if summary["accuracy"] is not None
        else f"accuracy    - (no labels; {summary['images']} images, T={summary['timesteps']})",
        f"first-layer MACs  {summary['first_layer_macs']} ({_fmt(per_image['first_layer_macs'])}"
        f" per image)",
        f"synaptic ops      {summary['synaptic_ops']} ({_fmt(per_image['synaptic_ops'])}"
        f" per image)",
        f"spikes            {summary['spikes']} ({_fmt(per_image['spikes'])} per image)",
        "",
    ]
    if "predictions" in summary:
        shown = summary["predictions"][:32]
        more = len(summary["predictions"]) - len(shown)
        lines.insert(-1, "predictions       " + " ".join(map(str, shown))
                     + (f" ... ({more} more; --json has all)" if more else ""))
    rows = [[layer["name"], layer["type"], layer["synaptic_ops"],
             _fmt(layer["synaptic_ops_per_image"]), layer["spikes"],
             _fmt(layer["spikes_per_image"]),
             None if layer["spike_rate"] is None else f"{layer['spike_rate'] * 100:.2f} %"]
            for layer in summary["per_layer"]]
    lines += table(["layer", "type", "syn ops", "per image", "spikes", "per image",
                    "rate/neuron/step"], rows, align="<<>>>>>")
    return lines
