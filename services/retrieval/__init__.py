"""Retrieval: chat requests -> KNN over the tenant's rules -> grounded requests."""
