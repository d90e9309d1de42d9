"""A fake Kubernetes API server for tests (see fake_apiserver.py)."""
