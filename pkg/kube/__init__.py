"""Kubernetes access: the only place the official `kubernetes` client is imported."""
