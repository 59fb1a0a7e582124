"""The suite's fixtures live in one module, ``tests/fixtures.py``, loaded here for every test."""

pytest_plugins = ["tests.fixtures"]
