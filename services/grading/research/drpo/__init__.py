"""DRPO: dynamic-reward prompt optimization (beam search over system prompts)."""
