"""Cycle-bounded stream helpers for Amaranth 0.5 async testbenches.

``stream_put`` and ``stream_get`` are the helpers of the Amaranth stream documentation with one
addition: a cycle bound. A hung design fails the test with :class:`StreamTimeout` naming the
stream instead of hanging CI. ``pause`` patterns (an iterable of 0/1, cycled) insert idle
cycles so every test can exercise back-pressure and bubbles.
"""

import itertools

__all__ = [
    "DEFAULT_TIMEOUT",
    "StreamTimeout",
    "stream_put",
    "stream_get",
    "stream_put_all",
    "stream_get_all",
]

#: Cycles a helper waits for a single transfer before giving up.
DEFAULT_TIMEOUT = 10_000


class StreamTimeout(AssertionError):
    """A stream transfer did not happen within its cycle bound."""


def _name(stream):
    return getattr(stream.valid, "name", "stream").removesuffix("__valid")


async def stream_put(ctx, stream, payload, *, timeout=DEFAULT_TIMEOUT):
    """Offer ``payload`` on ``stream`` until the consumer takes it (at most ``timeout`` cycles).

    ``payload`` may be anything ``ctx.set`` accepts for the payload's shape (an int, or a dict
    for a ``data.StructLayout``).
    """
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    for _ in range(timeout):
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            ctx.set(stream.valid, 0)
            return
    raise StreamTimeout(f"{_name(stream)}: payload not accepted within {timeout} cycles")


async def stream_get(ctx, stream, *, timeout=DEFAULT_TIMEOUT):
    """Accept one payload from ``stream`` (at most ``timeout`` cycles) and return it."""
    ctx.set(stream.ready, 1)
    for _ in range(timeout):
        _, _, payload, valid = await ctx.tick().sample(stream.payload, stream.valid)
        if valid:
            ctx.set(stream.ready, 0)
            return payload
    raise StreamTimeout(f"{_name(stream)}: no payload within {timeout} cycles")


async def _idle(ctx, pauses):
    while next(pauses):
        await ctx.tick()


async def stream_put_all(ctx, stream, payloads, *, pause=(0,), timeout=DEFAULT_TIMEOUT):
    """Send every payload in order; before each, idle while the ``pause`` pattern says 1."""
    pauses = itertools.cycle(pause)
    for payload in payloads:
        await _idle(ctx, pauses)
        await stream_put(ctx, stream, payload, timeout=timeout)


async def stream_get_all(ctx, stream, count, *, pause=(0,), timeout=DEFAULT_TIMEOUT):
    """Receive ``count`` payloads; before each, hold ``ready`` low while ``pause`` says 1."""
    pauses = itertools.cycle(pause)
    received = []
    for _ in range(count):
        await _idle(ctx, pauses)
        received.append(await stream_get(ctx, stream, timeout=timeout))
    return received
