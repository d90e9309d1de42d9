"""serviceregistry."""
