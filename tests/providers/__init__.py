"""Tests of the provider clients and their fakes (plain Python, no database)."""
