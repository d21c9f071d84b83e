"""A missing or malformed required setting stops start-up with one clear line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"DATABASE_URL": "postgresql://u@127.0.0.1:1/db", "REDIS_URL": "redis://127.0.0.1:1/0",
        "JWT_SECRET": "x" * 40}


def start_api(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in GOOD and not k.startswith(("SMTP_", "ACCESS_"))}
    # tmp_path as the working directory: no developer `.env` fills the gap.
    return subprocess.run([sys.executable, "-c", "from src.infra.config import get_settings; get_settings()"],
                          env={**base, **env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("name", "value", "word"), [
    ("JWT_SECRET", None, "missing"),
    ("JWT_SECRET", "short", "invalid"),
    ("DATABASE_URL", "mysql://nope", "invalid"),
    ("ACCESS_TOKEN_TTL", "soon", "invalid"),
])
def test_a_bad_setting_stops_start_up_naming_it(name: str, value: str | None, word: str, tmp_path: Path) -> None:
    env = {k: v for k, v in GOOD.items() if k != name}
    if value is not None:
        env[name] = value
    result = start_api(env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and word in lines[0]


def test_good_settings_start(tmp_path: Path) -> None:
    assert start_api(GOOD, tmp_path).returncode == 0
