"""Models on disk: the default model for people (SmolLM2) and the engine options each needs."""
