"""No secret reaches a log line (issue 9, defect 5): structlog fields and standard-library records
(Dramatiq logs a failed job's arguments) are scrubbed."""

from __future__ import annotations

import io
import logging

import structlog

from src.infra.logging import RedactSecrets, configure_logging, redact

TOKEN = "Zq3s9LkP0_fake-reset-token-value"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def test_secret_values_are_redacted_in_text() -> None:
    dramatiq_line = (f"Failed to process message auth.send_password_reset(to='a@b.c', username='al', "
                     f"token='{TOKEN}', reset_id='ab12') with unhandled exception.")
    assert TOKEN not in redact(dramatiq_line) and "reset_id='ab12'" in redact(dramatiq_line)
    for text in (f'{{"token": "{TOKEN}"}}', f"/reset-password?token={TOKEN}&x=1", f"Bearer {TOKEN}",
                 f"refresh_token={TOKEN}", f"password: {TOKEN}", f"auth {JWT}"):
        assert TOKEN not in redact(text) and JWT not in redact(text), text


def test_standard_library_records_are_scrubbed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    try:
        logger.error("Failed to process message %s", {"kwargs": {"token": TOKEN}})
        try:
            raise RuntimeError(f"SMTP refused token={TOKEN}")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    assert TOKEN not in stream.getvalue() and "Failed to process message" in stream.getvalue()


def test_structlog_fields_and_values_are_scrubbed(capsys: object) -> None:
    configure_logging("INFO")
    try:
        structlog.get_logger("t").warning("auth.something", reset_token=TOKEN, url=f"/x?token={TOKEN}",
                                          note=f"Bearer {JWT}")
        err = capsys.readouterr().err  # type: ignore[attr-defined]
    finally:
        structlog.reset_defaults()  # its stderr was capsys's: later tests must not write there
    assert "auth.something" in err and TOKEN not in err and JWT not in err
