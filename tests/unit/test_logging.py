"""Logs are JSON lines and never carry passwords or tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from src.infra.logging import configure_logging


@pytest.fixture
def json_logging() -> Iterator[None]:
    configure_logging("INFO")
    yield
    structlog.reset_defaults()  # the captured stderr closes after the test; later loggers must not keep it


@pytest.mark.usefixtures("json_logging")
def test_log_lines_are_json_and_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    structlog.contextvars.bind_contextvars(request_id="r-1")
    structlog.get_logger("test").info("auth.signin", user_id="u-1", password="hunter22",
                                      refresh_token="secret-refresh", authorization="Bearer abc")
    structlog.contextvars.clear_contextvars()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "auth.signin" and line["request_id"] == "r-1" and line["user_id"] == "u-1"
    assert line["password"] == line["refresh_token"] == line["authorization"] == "[redacted]"
    assert "hunter22" not in json.dumps(line)
