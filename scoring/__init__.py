"""Scoring: grading, curation, curriculum and training on the data root, in four levels.

L0 kernel (`errors`, `schemas` with `synthesis_schemas`, `storage`, `catalog`) → L1 libraries (`grading/`,
`curation/`, `curriculum/`, `training/`, `checkpoints`) → L2 assembly (`config`, `checks`) → L3 stages (`stages/`).
A module imports only its own level or lower ones; `pyproject.toml`'s import-linter contracts check it.
"""
