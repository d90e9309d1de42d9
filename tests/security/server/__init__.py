"""Tests of security/server."""
