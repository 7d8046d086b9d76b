"""Shared fixtures: the real data folder (``MORPH_DATA``, default ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    d = Path(os.environ.get("MORPH_DATA", ROOT.parent / "shared" / "data"))
    if not d.is_dir():
        raise RuntimeError(f"real data not found at {d}: set MORPH_DATA to the shared data folder")
    return d


@pytest.fixture(scope="session")
def data() -> Path:
    return data_dir()


def real_swcs() -> list[Path]:
    return sorted(data_dir().glob("swc/*/*.swc"))
