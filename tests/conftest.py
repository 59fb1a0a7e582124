"""The suite's fixtures live in one module, ``tests/fixtures.py``, loaded here for every test.

Each test carries the marker of its folder (``unit``, ``integration``, ``browser``, ``bench``),
so that ``-m`` can pick a group as well as a path can."""

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures"]

GROUPS = ("unit", "integration", "browser", "bench")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = Path(item.path).parent.name
        if group in GROUPS:
            item.add_marker(group)
