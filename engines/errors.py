"""The error hierarchy: fail fast on bad configuration, retry transient failures, keep row-level rejects as rows.

Errors say what was wrong, show the bad value, and where possible what is allowed instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GradusError(Exception):
    """Base class for every error Gradus raises on purpose."""


class ConfigError(GradusError, ValueError):
    """A configuration value (file, key, name, path) is wrong; the run stops before any work is done."""


class RetryableError(GradusError):
    """A transient failure (a server hiccup, a busy resource); Dagster's RetryPolicy may try again."""


class IntegrityError(GradusError):
    """Stored data does not match what was recorded for it (a hash mismatch, a truncated file)."""


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """Return a ' did you mean X? available: a, b' hint for an unknown name."""
    options = sorted(allowed)
    close = difflib.get_close_matches(value, options, n=1)
    hint = f" did you mean {close[0]!r}?" if close else ""
    return f"{hint} available: {', '.join(options) if options else '(none)'}"
