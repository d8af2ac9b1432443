"""The test suite, a package so that its modules and conftests are known by their paths
(``tests.conftest``, ``tests.providers.conftest``) rather than by bare names that collide."""
