"""Procedural problem families, registered by name in `FAMILIES` (importing this package registers them)."""

# Each import registers its family.
from synthesis.families import arithmetic as _arithmetic  # noqa: F401
from synthesis.families import combinatorics as _combinatorics  # noqa: F401
from synthesis.families import countdown as _countdown  # noqa: F401
from synthesis.families import elementary as _elementary  # noqa: F401
from synthesis.families import fraction_arithmetic as _fraction_arithmetic  # noqa: F401
from synthesis.families import knights_knaves as _knights_knaves  # noqa: F401
from synthesis.families import linear_equations as _linear_equations  # noqa: F401
from synthesis.families import modular_arithmetic as _modular_arithmetic  # noqa: F401
from synthesis.families import sequences as _sequences  # noqa: F401
from synthesis.families import word_problems as _word_problems  # noqa: F401
from synthesis.families.base import FAMILIES, Family, item_rng

__all__ = ["FAMILIES", "Family", "item_rng"]
