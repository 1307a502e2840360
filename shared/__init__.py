"""Contracts and plumbing shared by the alignstream services."""
