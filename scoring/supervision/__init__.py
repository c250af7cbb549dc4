"""Supervision data for SFT and preference training (methods §14; issue 26 item 1): reasoning traces with a
step-wise error estimate (`steps.py`, exact arithmetic in `arithmetic.py`; or the teacher judging each step,
`judge.py`), selection policies (`policies.py`), preference pairs from verified rollouts and teacher traces
(`pairs.py`) and trainer exports (`exports.py`). The stage that reads and
writes the tables is `scoring.stages.supervision`.

It sits above `scoring.training` in the layers: its exports reuse the trainer exports' message type and directory
swap, and it reads grading's prompts; nothing below imports it."""
