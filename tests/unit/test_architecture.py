"""The import contracts hold, and they would catch a module importing another."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(project / "pyproject.toml")],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A copy of the source tree and the import-linter configuration."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_are_kept() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" in done.stdout and " 0 broken" in done.stdout


def test_a_module_importing_another_breaks_the_build(project_copy: Path) -> None:
    (project_copy / "src/modules/users/leak.py").write_text(
        '"""A forbidden shortcut."""\n\nfrom src.modules.auth.tokens import digest\n\n__all__ = ["digest"]\n')
    done = _lint_imports(project_copy)
    assert done.returncode != 0
    assert "Modules never import each other BROKEN" in done.stdout
    assert "src.modules.users.leak" in done.stdout


def test_infra_importing_a_module_breaks_the_layers(project_copy: Path) -> None:
    (project_copy / "src/infra/leak.py").write_text(
        '"""A forbidden shortcut."""\n\nimport src.modules.users.service\n')
    done = _lint_imports(project_copy)
    assert done.returncode != 0
    assert "Layers: entry points > bootstrap > socket > modules > infra > common BROKEN" in done.stdout
    assert "src.infra.leak" in done.stdout
