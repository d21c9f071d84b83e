"""The served OpenAPI document tells the truth: Schemathesis fuzzes every operation it lists
(whatever module added it) against a real API process, authenticated, and finds no 5xx, no
undocumented status code or content type, and no response that breaks its schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from tests.e2e.harness import ROOT, ApiProcess

CHECKS = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                   "response_headers_conformance", "response_schema_conformance"])
# Per operation: bounds the run (about a minute here). The exhaustive "coverage" phase is left
# out: it generates thousands of boundary cases (5,094, all passing, when last run by hand).
MAX_EXAMPLES = 12
METHODS = {"get", "put", "post", "patch", "delete"}
BUDGET_SECONDS = 300  # a hard stop; the run normally ends well before


def test_every_operation_keeps_its_contract(api: ApiProcess) -> None:
    document = httpx.get(f"{api.base_url}/schema/openapi.json", timeout=15).json()
    assert len(document["paths"]) > 10
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{api.base_url}/schema/openapi.json",
         "--url", api.base_url, "--checks", CHECKS, "--phases", "examples,fuzzing",
         "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--no-shrink",
         "--request-timeout", "10", "--suppress-health-check", "all",
         "--output-truncate", "true"],
        cwd=ROOT, capture_output=True, text=True, timeout=BUDGET_SECONDS,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_auth", "CHATTY_ST_API": api.base_url,
             "PYTHONPATH": str(ROOT)})
    report = run.stdout[-12000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    operations = sum(method in METHODS for item in document["paths"].values() for method in item)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) == operations, report  # every operation, none skipped
