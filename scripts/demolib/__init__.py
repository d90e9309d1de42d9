"""The Bookinfo demo mesh behind `scripts/demo` (entry point: scripts/demo_mesh.py)."""
