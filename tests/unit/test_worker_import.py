"""Importing the worker's composition root builds nothing: no settings read, no thread, no client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, threading
import src.worker
assert threading.active_count() == 1, threading.enumerate()
assert src.worker._Process.settings is None and src.worker._Process.ctx is None
import dramatiq
from dramatiq.broker import global_broker
assert global_broker is None, global_broker
print("clean")
"""


def test_importing_the_worker_has_no_side_effects() -> None:
    # No DATABASE_URL / REDIS_URL / JWT_SECRET: reading the settings would exit with an error.
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"}}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stdout + done.stderr
