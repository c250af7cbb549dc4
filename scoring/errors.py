"""Gradus's error hierarchy, re-exported here for scoring code.

It lives in `engines.errors` because engines sit at the bottom of the dependency graph
(engines ← synthesis ← scoring ← assets ← pipelines) and need it too.
"""

from engines.errors import ConfigError, GradusError, IntegrityError, RetryableError, did_you_mean

__all__ = ["ConfigError", "GradusError", "IntegrityError", "RetryableError", "did_you_mean"]
