"""The one check of a component's integer parameters (the Amaranth library's convention: a
``TypeError`` naming the parameter and the bad value)."""

__all__ = ["check_int"]


def check_int(value, what, low=1, high=None):
    """Raise ``TypeError`` unless ``value`` is an ``int`` (a ``bool`` is not) in
    ``low..high`` (``high=None``: no upper bound); ``what`` names the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        kind = "a positive integer" if (low, high) == (1, None) else (
            f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}")
        raise TypeError(f"{what} must be {kind}, not {value!r}")
