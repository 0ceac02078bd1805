# amaranth: UnusedElaboratable=no
"""``spikeforge report``: its numbers are the golden/energy/simulate commands' JSON for the
same images, its figures are real PNGs, its page is self-contained, and bad input exits 2
with one line before anything is written."""

import base64
import json
import re
import struct
import zlib

import pytest

from spikeforge.tools.cli import main

IMAGES, RTL_IMAGES, PES = 6, 2, 8


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _planted_synthesis(pes):
    """A made-up synthesis result stored where ``spikeforge synth --pes P`` caches its own
    (the numbers are this test's, so the report must show these and not compute any)."""
    from spikeforge.boards.designs import board_design, make_top, top_verilog
    from spikeforge.boards.synth import cache_entry

    design = board_design("pynq-z2", pes)
    module, text = top_verilog("ps", make_top("ps", config=design.config, sizes=design.sizes))
    resources = {"LUT": {"used": 5320, "available": 53200, "percent": 10.0},
                 "FF": {"used": 21280, "available": 106400, "percent": 20.0},
                 "BRAM": {"used": 42.0, "available": 140, "percent": 30.0},
                 "DSP48E1": {"used": 0, "available": 220, "percent": 0.0}}
    cache_entry(text, module).write_text(json.dumps({
        "device": "xc7z020clg400-1", "top": "ps", "cells": {}, "resources": resources,
        "timing": None, "seconds": 1.0, "cached": False}))
    return resources


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report of the shipped digits bundle, with a planted synthesis cache entry."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPIKEFORGE_CACHE", str(cache))
        resources = _planted_synthesis(PES)
        out = tmp_path_factory.mktemp("report") / "R"
        status = main(["report", "--dataset", "digits", "--images", str(IMAGES),
                       "--rtl-images", str(RTL_IMAGES), "--pes", str(PES), "--out", str(out)])
    assert status == 0
    return out, json.loads((out / "report.json").read_text()), resources


def test_report_numbers_equal_the_commands_json(report, capsys):
    _, data, _ = report
    golden = json.loads(_run(["golden", "--dataset", "digits", "--limit", IMAGES, "--json"],
                             capsys)[1])
    energy = json.loads(_run(["energy", "--dataset", "digits", "--images", IMAGES, "--pes",
                              PES, "--json"], capsys)[1])
    simulated = json.loads(_run(["simulate", "--dataset", "digits", "--images", RTL_IMAGES,
                                 "--pes", PES, "--json"], capsys)[1])
    assert data["golden"] == golden
    assert data["energy"] == energy
    timing = "simulation_seconds"   # wall-clock time, the one field that differs between runs
    assert {k: v for k, v in data["simulate"].items() if k != timing} == \
        {k: v for k, v in simulated.items() if k != timing}
    # The derived tables agree with the commands too.
    assert data["accuracy_vs_timesteps"][-1]["accuracy"] == golden["accuracy"]
    assert [row["timesteps"] for row in data["accuracy_vs_timesteps"]] == \
        list(range(1, golden["timesteps"] + 1))
    assert data["cycles"]["measured"] == simulated["cycles"]
    assert data["cycles"]["predicted"][:RTL_IMAGES] == simulated["predicted_cycles"]
    assert sum(data["cycles"]["predicted"]) / IMAGES == energy["delay"]["mac"]["cycles"]
    assert sum(layer["cycles"] for layer in data["cycles"]["layers"]) == \
        pytest.approx(data["cycles"]["mean"])
    # The RTL's spike counters on its images agree with the golden model's on the same ones.
    first = json.loads(_run(["golden", "--dataset", "digits", "--limit", RTL_IMAGES, "--json"],
                            capsys)[1])
    rtl_spikes = {name: sum(r["spikes"][name] for r in data["simulate"]["results"])
                  for name in data["simulate"]["results"][0]["spikes"]}
    assert rtl_spikes and rtl_spikes == {layer["name"]: layer["spikes"]
                                         for layer in first["per_layer"]
                                         if layer["name"] in rtl_spikes}


def test_report_resources_come_from_the_synth_cache(report):
    out, data, resources = report
    assert data["resources"]["synthesised"] is True
    assert data["resources"]["resources"] == resources
    assert (out / "resources.png").is_file()


def test_report_without_synthesis_names_the_command(tmp_path, monkeypatch):
    from spikeforge.tools.report_page import _resources

    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path))
    found = _resources(4)
    assert found == {"synthesised": False,
                     "command": "spikeforge synth --board pynq-z2 --pes 4"}


def _png_size(data):
    """``(width, height)`` of a PNG after checking its signature and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        crc, = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks.append(kind)
        offset += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    return struct.unpack(">II", data[16:24])


def test_report_figures_are_real_images(report):
    from matplotlib import image

    out, data, _ = report
    assert len(data["figures"]) >= 6
    for name in data["figures"].values():
        raw = (out / name).read_bytes()
        width, height = _png_size(raw)
        assert width >= 400 and height >= 300 and len(raw) > 5000, name
        pixels = image.imread(out / name)
        assert pixels.std() > 0.05, f"{name} is nearly one colour"


def test_report_page_is_self_contained(report):
    out, data, _ = report
    text = (out / "index.html").read_text()
    for name in data["figures"].values():
        encoded = base64.b64encode((out / name).read_bytes()).decode("ascii")
        assert f'href="{name}"' in text and f"data:image/png;base64,{encoded}" in text
    for value in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert value.startswith("data:image/png;base64,") or (out / value).is_file(), value
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", text)
    assert not re.search(r"https?:|ftp:|//[a-z]", without_images)
    assert "<script" not in text and "@import" not in text


@pytest.mark.parametrize("argv, message", [
    (["--rtl-images", "30"], "--rtl-images 30 is not between 0 and --images 20"),
    (["--raster-layer", "fc"], "--raster-layer 'fc' is not a spiking layer of 'digits_snn' "
                               "(conv1, conv2)"),
    (["--dataset", "indian-pines", "--sweep-membrane"],
     "--sweep-membrane supports the digits and mnist datasets, not indian-pines"),
    (["--pes", "0"], "argument --pes: 0 is not a positive number"),
])
def test_report_bad_input(argv, message, tmp_path, capsys):
    out = tmp_path / "R"
    status, stdout, err = _run(["report", "--out", out] + argv, capsys)
    assert (status, stdout, err) == (2, "", f"spikeforge: error: {message}\n")
    assert not out.exists()


def test_report_out_is_a_file(tmp_path, capsys):
    out = tmp_path / "R"
    out.write_text("x")
    status, _, err = _run(["report", "--out", out], capsys)
    assert status == 2 and err == f"spikeforge: error: the output {out} exists and is not a " \
                                  f"folder\n"
