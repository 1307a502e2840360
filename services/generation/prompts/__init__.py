"""Prompt strategies: OPO (rules before the question), baseline, oracle, DRPO, prefill."""

from services.generation.prompts.builder import ChatPrompt, build_prompt

__all__ = ["ChatPrompt", "build_prompt"]
