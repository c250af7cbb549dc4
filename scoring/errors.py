"""Gradus's error hierarchy, re-exported here for scoring code.

It lives in `engines.errors` because engines sit at the bottom of the dependency graph
(engines ← synthesis ← scoring ← assets ← pipelines) and need it too.
"""

from engines.errors import ConfigError, GradusError, IntegrityError, RetryableError, did_you_mean


class StorageError(GradusError):
    """A table, shard or export could not be written under the data root (disk full, read-only file system,
    no permission). The message names the path and the OS error; the previously published version is intact."""


__all__ = ["ConfigError", "GradusError", "IntegrityError", "RetryableError", "StorageError", "did_you_mean"]
