"""Suite-wide rules. With RAFTKUBE_NO_SKIPS=1 (set by .ci/run) a test that skips, because kubectl, Chromium, Docker
or root is missing, fails instead: in CI every test must run, and a missing tool is .ci/run's to install."""
from __future__ import annotations

import os

import pytest

NO_SKIPS = "RAFTKUBE_NO_SKIPS"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001 - pytest's signature
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get(NO_SKIPS) == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where every test must run ({NO_SKIPS}=1): {reason}"
