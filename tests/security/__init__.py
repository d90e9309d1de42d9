"""Tests of security/."""
