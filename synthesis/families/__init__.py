"""Procedural problem families, registered by name in `FAMILIES` (importing this package registers them)."""

from synthesis.families import arithmetic as _arithmetic  # noqa: F401  (registers the family)
from synthesis.families.base import FAMILIES, Family, item_rng

__all__ = ["FAMILIES", "Family", "item_rng"]
