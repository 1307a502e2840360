"""LLM-as-judge: versioned prompts, any OpenAI-compatible model, cached strict verdicts."""
