"""L1 grading: verify answers, run rollouts, estimate difficulty (pass rates, posteriors, IRT, predictor)."""
