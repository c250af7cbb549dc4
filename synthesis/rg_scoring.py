"""Which reasoning-gym datasets Gradus scores with their own scorer, and which it refuses, with why.

A dataset's `score_answer` sees the model's answer, which is untrusted text. The table below was made by
reading every scorer of the reviewed release (with `synthesis.rg_scorer_audit` listing what each one reaches,
then reading the flagged ones by hand). Every check is default-deny:

- `NATIVE`: the scorer compares, counts or parses the answer with `json`/`re`/`int`/`float`/`ast.literal_eval`
  and never evaluates it; the dataset is allowed and scored by its own scorer.
- `REFUSED`: the scorer reaches an evaluator (`eval`, `sympy.parse_expr`, any other sympy entry point that
  `sympify`s text) or something that cannot be reviewed; asking for such a dataset is a `ConfigError` naming it
  and the reason, and a stored problem of it (from an older data root) gets an `error` verdict instead of a call.
- A dataset in neither set (new in a later reasoning-gym) is refused until someone reviews it.

On top of the table, `check_scorer` runs the audit on the installed scorer every time, so an upgrade that makes
a NATIVE scorer evaluate text is refused at run time too; `tests/synthesis/test_rg_scoring.py` fails on it.

Gradus's own general checker hands text to math-verify; that path was reviewed the same way (math-verify 0.9.0:
its one `parse_expr` call receives only text matching digits, '.', whitespace and `+-*×/^()÷`; latex2sympy2
builds sympy objects from a parse tree and calls `parse_expr` only on configured variable values).
"""

from __future__ import annotations

from functools import cache

from engines.errors import ConfigError

REVIEWED_RELEASE = "0.1.25"

# Scorers that call eval()/sympy on the answer (or on anything), or cannot be reviewed statically.
REFUSED: dict[str, str] = {
    # eval() on the answer text
    "binary_matrix": "calls eval() on the answer",
    "n_queens": "calls eval() on the answer",
    "spiral_matrix": "calls eval() on the answer",
    "string_insertion": "calls eval() on the answer",
    # sympy's parse_expr/sympify evaluate the text they parse
    "countdown": "passes the answer to sympy.parse_expr, which evaluates it (Gradus's own countdown family "
    "checks such answers with a bounded parser)",
    "puzzle24": "passes the answer to sympy.parse_expr, which evaluates it",
    "simple_integration": "passes the answer to sympy.parse_expr, which evaluates it",
    "intermediate_integration": "passes the answer to sympy.parse_expr, which evaluates it",
    "polynomial_multiplication": "passes the answer to sympy.parse_expr, which evaluates it (and its items "
    "depend on Python's hash seed, so they cannot be rebuilt in another process)",
    # eval() on the dataset's own text: not the answer, but the rule is simpler with no exceptions
    "bitwise_arithmetic": "calls eval() (on its own problem text)",
    "number_sorting": "calls eval() (on its reference answer when it is not JSON)",
    # items that cannot be rebuilt for scoring
    "isomorphic_strings": "needs its item rebuilt, and its items depend on Python's hash seed (set order)",
    "knight_swap": "needs its item rebuilt, and its items depend on Python's hash seed (set order)",
    "ransom_note": "needs its item rebuilt, and its items depend on Python's hash seed (set order)",
    "word_ladder": "needs its item rebuilt, and its items depend on Python's hash seed (set order)",
    # a scorer that cannot tell answers apart
    "game_of_life_halting": "compares bool(answer) with bool(reference), so any non-empty answer scores 1.0",
    "composite": "mixes other datasets, whose scorers are reviewed one by one: configure them directly",
}

# Scorers read and found not to evaluate the answer text.
NATIVE: frozenset[str] = frozenset(
    {
        "ab",
        "acre",
        "advanced_geometry",
        "aiw",
        "arc_1d",
        "arc_agi",
        "base_conversion",
        "basic_arithmetic",
        "bf",
        "binary_alternation",
        "boxnet",
        "caesar_cipher",
        "calendar_arithmetic",
        "chain_sum",
        "circuit_logic",
        "codeio",
        "coin_flip",
        "color_cube_rotation",
        "complex_arithmetic",
        "count_bits",
        "count_primes",
        "course_schedule",
        "cryptarithm",
        "decimal_arithmetic",
        "decimal_chain_sum",
        "dice",
        "emoji_mystery",
        "family_relationships",
        "figlet_font",
        "fraction_simplification",
        "futoshiki",
        "game_of_life",
        "gcd",
        "graph_color",
        "group_anagrams",
        "gsm_symbolic",
        "jugs",
        "kakurasu",
        "knights_knaves",
        "largest_island",
        "lcm",
        "leg_counting",
        "letter_counting",
        "letter_jumble",
        "list_functions",
        "mahjong_puzzle",
        "manipulate_matrix",
        "maze",
        "mini_sudoku",
        "modulo_grid",
        "needle_haystack",
        "number_filtering",
        "number_format",
        "number_sequence",
        "palindrome_generation",
        "palindrome_partitioning",
        "path_star",
        "polynomial_equations",
        "pool_matrix",
        "power_function",
        "prime_factorization",
        "products",
        "propositional_logic",
        "quantum_lock",
        "rearc",
        "rectangle_count",
        "rotate_matrix",
        "rotten_oranges",
        "rubiks_cube",
        "rush_hour",
        "self_reference",
        "sentence_reordering",
        "shortest_path",
        "simple_equations",
        "simple_geometry",
        "sokoban",
        "spell_backward",
        "string_manipulation",
        "string_splitting",
        "string_synthesis",
        "sudoku",
        "survo",
        "syllogism",
        "time_intervals",
        "tower_of_hanoi",
        "tsumego",
        "word_sequence_reversal",
        "word_sorting",
        "zebra_puzzles",
    }
)


class RefusedDataset(ConfigError):
    """A reasoning-gym dataset whose scorer Gradus will not run on model text."""


@cache
def scorer_problem(name: str) -> str | None:
    """Why `name`'s own scorer must not see model text, or None when it may."""
    if name in REFUSED:
        return f"its scorer {REFUSED[name]}"
    if name not in NATIVE:
        return f"its scorer has not been reviewed for Gradus (reviewed release: reasoning-gym {REVIEWED_RELEASE})"
    from reasoning_gym.factory import DATASETS

    from synthesis.rg_scorer_audit import audit_scorer

    findings = audit_scorer(DATASETS[name][0])
    if findings:
        return "its installed scorer now reaches an evaluator: " + "; ".join(str(f) for f in findings[:3])
    return None


def check_scorer(name: str) -> None:
    """Raise `RefusedDataset` naming the dataset and the reason when its scorer may not see model text."""
    problem = scorer_problem(name)
    if problem is not None:
        raise RefusedDataset(
            f"reasoning-gym dataset {name!r} is refused: {problem}. Model answers are untrusted text and are never "
            "evaluated as code; choose another dataset (see synthesis/rg_scoring.py for the reviewed list)"
        )
