"""Test-wide settings that must be in place before anything imports Prefect.

Prefect reads its settings when imported, so they are set here, at collection:
a throw-away PREFECT_HOME (never the user's ~/.prefect database), no telemetry
(offline machines log name-resolution errors), and no inherited server URL (tests
start their own server where they need one).
"""

from __future__ import annotations

import os
import shutil
import tempfile

_PREFECT_HOME = tempfile.mkdtemp(prefix="scanforms-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"  # first start migrates; CI is slow
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILES_PATH", None)


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)
