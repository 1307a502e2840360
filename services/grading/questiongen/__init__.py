"""OPO's scalable question generation: rules from the memory -> MCQs -> LLM quality filter."""
