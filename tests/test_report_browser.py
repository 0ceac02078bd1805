"""``spikeforge report``'s page renders in a real headless browser and is not blank.

The browser is Debian's Chromium (``/usr/bin/chromium``). When it is missing the set-up
installs it with ``apt-get install chromium`` where that can run (root, apt-get present);
elsewhere the test is skipped and says why. The flags are those these offline machines need:
``--no-sandbox`` (running as root), ``--disable-gpu`` and ``--disable-dev-shm-usage`` (no
GPU, a small /dev/shm), a throw-away profile, and no first-run or network services.
"""

import os
import shutil
import subprocess

import pytest

from spikeforge.tools.cli import main


def _chromium():
    """The Chromium executable, installed from the distribution's packages if need be."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("Chromium is not installed and apt-get cannot install it here "
                    "(needs root and apt-get)")
    result = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"],
                            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                            capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if result.returncode != 0 or found is None:
        pytest.skip(f"apt-get install chromium failed (exit status {result.returncode}): "
                    f"{result.stderr.strip().splitlines()[-1:] or 'no message'}")
    return found


def test_report_renders_in_chromium(tmp_path, monkeypatch):
    from matplotlib import image

    browser = _chromium()
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "R"
    assert main(["report", "--dataset", "digits", "--images", "4", "--rtl-images", "0",
                 "--pes", "4", "--out", str(out)]) == 0
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
         f"--screenshot={shot}", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    # Not blank: a real fraction of the page is ink (text, tables, the figures' colours).
    ink = (pixels.mean(axis=2) < 0.9).mean()
    colour = (pixels.max(axis=2) - pixels.min(axis=2) > 0.2).mean()
    assert ink > 0.02 and colour > 0.005, (ink, colour)
