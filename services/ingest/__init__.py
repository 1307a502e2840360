"""Ingest: rule events -> embeddings -> Redis rule memory, with confirmations."""
