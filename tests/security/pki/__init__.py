"""Tests of security/pki."""
