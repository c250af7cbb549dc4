"""L1 training: the GRPO trainer on the curriculum and the trainer-format exports."""
