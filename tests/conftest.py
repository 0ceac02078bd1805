"""Shared test setup: make the helper modules next to the tests importable.

``naive_reference`` (the loop-based reference of the integer contract) and
``random_networks`` (the seeded network generator) live in ``tests/`` and are imported by
name from several test files, whatever directory pytest is started from.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
