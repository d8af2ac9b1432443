"""Lethe's tests, grouped like the code (providers, mirror, erasure, team, views, lib,
commands). Each folder is a package, so test modules import what they share from
``tests.helpers`` by its full name, and the conftest of one folder never shadows another's."""
