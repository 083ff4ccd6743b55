"""The library does not depend on the DataModules: ``poseshift`` never imports ``data_modules``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import REPO_ROOT


def test_no_data_modules_import_statement_in_the_library():
    pattern = re.compile(r"^\s*(from|import)\s+data_modules\b", re.MULTILINE)
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "src" / "poseshift").rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert not offenders


@pytest.mark.slow
def test_importing_every_library_module_loads_no_data_module():
    code = (
        "import importlib, pkgutil, sys, poseshift\n"
        "for m in pkgutil.walk_packages(poseshift.__path__, 'poseshift.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'data_modules')\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT / "src")
