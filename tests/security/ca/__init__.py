"""Tests of security/ca."""
