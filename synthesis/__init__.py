"""Problem sources: procedural families, dataset imports and (later) LLM-driven synthesis. Pure Python."""
