"""The import contracts in pyproject.toml ([tool.importlinter]) hold: the apps form a one-way
stack, adapter packages stay apart, nothing in the product imports the bench, and no package's
modules import each other in a circle (lazy imports included). A new cycle or upward import
fails here with the chain to remove; run ``lint-imports`` for the same report."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
LINT = (
    "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
)
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_the_import_contracts_hold():
    # From the project's directory: its packages are read there, not from an installed copy.
    result = subprocess.run(
        [sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_cover_every_package_and_every_adapter_package():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert set(CONFIG["root_packages"]) == packages
    apps = {app.split(".")[0] for app in settings.INSTALLED_APPS}
    assert {app for app in apps if (ROOT / app).is_dir()} <= packages
    # Every app has its place in the stack (the bench stands beside it, imported by nothing).
    (stack,) = (c for c in CONFIG["contracts"] if c["type"] == "layers")
    placed = {m.split(".")[0].strip() for layer in stack["layers"] for m in re.split("[:|]", layer)}
    assert placed == set(CONFIG["root_packages"]) - {"bench"}
    adapters = {path.rsplit(".", 2)[0] for path in settings.PROVISIONING_ADAPTERS}
    for contract in CONFIG["contracts"]:
        if contract["name"].startswith("Adapter packages"):
            assert set(contract.get("source_modules") or contract["modules"]) == adapters
