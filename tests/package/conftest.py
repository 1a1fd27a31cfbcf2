"""`sam build` once for the run: every package test reads the same build (the API's, the
scanner's...), which takes the SAM CLI 15-25 s."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.template import REPO_ROOT
from tests.package.test_sam_package import _sam


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("sam") / "build"
    result = _sam("build", "--language-extensions", "--build-dir", str(out), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield out
    shutil.rmtree(out, ignore_errors=True)
