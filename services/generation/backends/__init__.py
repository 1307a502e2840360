"""LLM backends behind one interface: in-process vLLM engine, OpenAI-compatible HTTP."""
