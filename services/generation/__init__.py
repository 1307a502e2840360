"""Generation: grounded requests -> prompt -> LLM backend -> response on the reply topic."""
