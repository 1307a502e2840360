"""The alignstream services (ingest, retrieval, generation, grading) and the CLI."""
