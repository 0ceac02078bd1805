"""Progress bars for the long commands (``train``, ``regress``, ``simulate``, ``synth``,
``sweep``, ``report``), drawn with tqdm on stderr.

A bar is drawn only when it is *wanted*: stderr is a terminal and the command was not asked
for ``--json`` (:func:`wanted`). Everywhere else (CI logs, pipes, JSON mode) the bar object
is inert and the log lines a command already writes go to stderr exactly as before, so CI
logs stay readable. A bar only observes: it is fed from the callbacks the engines already
call (``progress(done, total)``, a per-image result, a log line) and never changes what they
compute or print on stdout.
"""

import re
import sys

__all__ = ["wanted", "Bar", "LineBar"]


def _tqdm():
    """tqdm's class, or ``None`` when the ``report`` extra is not installed (then no bars)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def wanted(json_mode=False, stream=None):
    """True when a bar should be drawn: not ``--json``, ``stream`` (stderr) is a TTY and
    tqdm is installed."""
    stream = sys.stderr if stream is None else stream
    return not json_mode and stream.isatty() and _tqdm() is not None


class Bar:
    """A counted bar: ``advance()`` after each finished unit, ``close()`` at the end.

    Parameters
    ----------
    total : int or None
        Units of work, when known.
    desc : str
        Short label shown before the bar.
    enabled : bool
        Draw it (see :func:`wanted`); a disabled bar writes nothing at all.
    """

    def __init__(self, total, desc, *, enabled, unit="it"):
        tqdm = _tqdm() if enabled else None
        if tqdm is None:
            enabled, tqdm = False, _Inert
        # leave=False: a finished bar is erased, so only the command's own output remains.
        self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                         disable=not enabled, dynamic_ncols=True)
        self.enabled = enabled

    def advance(self, count=1, note=None):
        """Count ``count`` more units done; ``note`` replaces the text after the bar."""
        if note is not None:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.update(count)

    def set(self, done, total=None, note=None):
        """Jump to ``done`` of ``total`` units (for callbacks that report absolute counts)."""
        if total is not None and total != self._bar.total:
            self._bar.total = total
        if note is not None:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.update(done - self._bar.n)

    def stage(self, text):
        """Name the stage now running (shown as the bar's label)."""
        self._bar.set_description_str(text)

    def counter(self):
        """A ``progress(done, total)`` callback that moves this bar."""
        return lambda done, total: self.set(done, total)

    def close(self):
        self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Inert:
    """What a disabled bar holds: tqdm's interface, doing nothing (tqdm may be missing)."""

    def __init__(self, total=None, **options):
        self.total, self.n = total, 0

    def update(self, count=1):
        self.n += count

    def reset(self, total=None):
        self.total, self.n = total, 0

    def set_postfix_str(self, *args, **kwargs):
        pass

    set_description_str = write = close = set_postfix_str


#: ``"epoch 3/40"`` (training) or ``"[3/12]"`` (regress): the first ``done/total`` of a line.
_COUNT = re.compile(r"(?:epoch |\[)(\d+)/(\d+)")


class LineBar(Bar):
    """A log callback (``log(text)``) that keeps the log lines and adds a bar under them.

    A line holding a count (``epoch 3/40``, ``[3/12]``) moves the bar to that count; with
    ``per_line`` set, every other line counts as one finished stage (``synth``). The lines
    themselves are written to stderr as before, above the bar when it is drawn.
    """

    def __init__(self, desc, *, enabled, total=None, per_line=False, unit="it"):
        super().__init__(total, desc, enabled=enabled, unit=unit)
        self._per_line = per_line

    def __call__(self, text):
        if not self.enabled:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
            return
        self._bar.write(text, file=sys.stderr)
        match = _COUNT.search(text)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            if done < self._bar.n:   # a new training phase starts again at epoch 1
                self._bar.reset(total=total)
            self.set(done, total)
        elif self._per_line:
            self.advance()
