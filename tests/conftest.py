"""Shared by both tiers: where the repository is, and what the kernel under test is."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.host.fixtures"]


def pytest_report_header() -> str:
    return f"echolab: {REPO_ROOT}, Python {sys.version.split()[0]}, kernel {platform.release()}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
