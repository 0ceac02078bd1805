"""Progress bars (``tools/progress.py``): drawn on a terminal, absent with ``--json`` and in
pipes, and never changing a command's output. Terminals are pseudo-terminals (``pty``)."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from spikeforge.tools.progress import Bar, LineBar, wanted

SWEEP = ["sweep", "membrane", "--dataset", "digits", "--limit", "30", "--bits", "10,8",
         "--calibration", "16"]
SIMULATE = ["simulate", "--dataset", "digits", "--images", "1", "--pes", "4"]


def _run_on_terminal(argv, env=None):
    """Run ``spikeforge argv`` with stderr on a pseudo-terminal; return (status, stdout,
    what the terminal showed)."""
    leader, follower = pty.openpty()
    # A fresh pseudo-terminal is 0x0; give it the size of an ordinary terminal window.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "spikeforge.tools.cli", *argv],
                               stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL,
                               env={**(env or os.environ), "COLUMNS": "100"})
    os.close(follower)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:   # the terminal closes once the program has exited
            break
        if not chunk:
            break
        shown += chunk
    stdout = process.stdout.read()
    process.stdout.close()
    status = process.wait(timeout=300)
    os.close(leader)
    return status, stdout.decode(), shown.decode(errors="replace")


@pytest.mark.parametrize("argv, label, unit", [(SWEEP, "sweep", "width"),
                                               (SIMULATE, "simulate", "image")])
def test_bar_on_a_terminal_not_with_json(argv, label, unit):
    status, shown_out, shown = _run_on_terminal(argv)
    assert status == 0
    assert f"{label}:" in shown and f"/{2 if label == 'sweep' else 1}" in shown, shown
    assert unit in shown
    status, json_out, shown = _run_on_terminal(argv + ["--json"])
    assert status == 0 and shown == "", shown
    json.loads(json_out)


def test_bar_never_changes_the_output():
    on_terminal = _run_on_terminal(SWEEP + ["--json"])[1]
    piped = subprocess.run([sys.executable, "-m", "spikeforge.tools.cli", *SWEEP, "--json"],
                           capture_output=True, text=True, check=True)
    assert piped.stderr == "" and json.loads(piped.stdout) == json.loads(on_terminal)
    text_terminal = _run_on_terminal(SWEEP)[1]
    text_piped = subprocess.run([sys.executable, "-m", "spikeforge.tools.cli", *SWEEP],
                                capture_output=True, text=True, check=True)
    assert text_piped.stderr == "" and text_piped.stdout == text_terminal


def test_wanted_needs_a_terminal_and_no_json(tmp_path):
    with open(tmp_path / "log", "w") as plain:
        assert not wanted(stream=plain)
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        assert wanted(stream=terminal) and not wanted(True, stream=terminal)
    os.close(leader)


def test_line_bar_keeps_the_lines_and_follows_counts(capsys):
    log = LineBar("train", enabled=True)
    log("[float] epoch 3/40  loss 0.1")
    assert (log._bar.n, log._bar.total) == (3, 40)
    log("[qat] epoch 1/10  loss 0.2")        # a new phase starts the bar again
    assert (log._bar.n, log._bar.total) == (1, 10)
    log("[summary] done")
    assert (log._bar.n, log._bar.total) == (1, 10)
    log.close()
    err = capsys.readouterr().err
    for line in ("[float] epoch 3/40  loss 0.1", "[qat] epoch 1/10  loss 0.2", "[summary] done"):
        assert line in err


def test_disabled_bars_write_nothing_but_the_lines(capsys):
    with Bar(5, "x", enabled=False) as bar:
        bar.advance()
        bar.set(4, 5, note="n")
        bar.stage("y")
    with LineBar("synth", enabled=False, total=2, per_line=True) as log:
        log("synth: yosys")
    assert capsys.readouterr().err == "synth: yosys\n"


def test_report_shows_its_stages_on_a_terminal_only(tmp_path):
    argv = ["report", "--dataset", "digits", "--images", "2", "--rtl-images", "1", "--pes", "4"]
    env = {**os.environ, "SPIKEFORGE_CACHE": str(tmp_path / "cache")}
    status, out, shown = _run_on_terminal(argv + ["--out", str(tmp_path / "a")], env)
    assert status == 0 and out.startswith(f"wrote {tmp_path / 'a' / 'index.html'}")
    for stage in ("report: golden model", "report: RTL simulation", "report: figures"):
        assert stage in shown, shown
    piped = subprocess.run([sys.executable, "-m", "spikeforge.tools.cli", *argv, "--out",
                            str(tmp_path / "b")], capture_output=True, text=True, env=env)
    assert (piped.returncode, piped.stderr) == (0, "")
