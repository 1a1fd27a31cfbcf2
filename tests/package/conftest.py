"""`sam build` once for the run: every package test reads the same build (the API's, the
scanner's...), which takes the SAM CLI 15-25 s."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.template import REPO_ROOT
from tests.package.test_sam_package import SAM, _sam


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not SAM.exists():  # as the modules' own mark: a checkout without the SAM CLI venv skips
        pytest.skip("SAM CLI venv missing: run `make test` (it installs it)")
    out = tmp_path_factory.mktemp("sam") / "build"
    result = _sam("build", "--language-extensions", "--build-dir", str(out), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield out
    shutil.rmtree(out, ignore_errors=True)
