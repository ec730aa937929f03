"""A pytest plugin (loaded by tests/conftest.py): a test skipped for a reason that is not in
tests/allowed_skips.py fails the session (non-zero exit), and the unexpected skips are listed
at the end. With pytest-xdist, workers forward their reports to the controlling process,
where these hooks see every test and set the exit status.

It also bounds how many ONNX backend cases may be unrunnable by onnxruntime on the original
(tests/test_onnx_backend_suite.py), so that a broken onnxruntime cannot make that suite vacuous.
"""

from __future__ import annotations

import pytest

_UNEXPECTED_SKIPS: list[tuple[str, str]] = []
_BACKEND = {"ran": 0, "unrunnable": 0}
# At most this fraction of the backend suite's cases may be unrunnable by onnxruntime on the
# original (about 15% on the machines measured): more means onnxruntime or the harness is
# broken here, and the suite would prove nothing.
BACKEND_MAX_UNRUNNABLE = 0.20
BACKEND_FILE = "tests/test_onnx_backend_suite.py::test_backend_case_survives_conversion"


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(longrepr)
    return text[len("Skipped: "):] if text.startswith("Skipped: ") else text


def _note(report) -> None:
    from tests.allowed_skips import is_allowed

    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if not is_allowed(reason):
            _UNEXPECTED_SKIPS.append((report.nodeid, reason))


def pytest_collectreport(report):
    _note(report)


def pytest_runtest_logreport(report):
    _note(report)
    if report.nodeid.startswith(BACKEND_FILE) and (report.when == "call" or report.skipped):
        _BACKEND["ran"] += 1
        if report.skipped and _skip_reason(report).startswith("onnxruntime cannot run"):
            _BACKEND["unrunnable"] += 1


def _backend_problem() -> str | None:
    return backend_problem(_BACKEND["ran"], _BACKEND["unrunnable"])


def backend_problem(ran: int, unrunnable: int) -> str | None:
    """Why the backend suite's run proves too little, or None: checked only when most of it
    ran (a -k selection of a few cases is not judged)."""
    if ran >= 500 and unrunnable > BACKEND_MAX_UNRUNNABLE * ran:
        return (f"{unrunnable} of {ran} ONNX backend cases are unrunnable by onnxruntime on the "
                f"original here (more than {BACKEND_MAX_UNRUNNABLE:.0%}): onnxruntime or the "
                "harness is broken on this machine")
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller decides
    ok = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if (_UNEXPECTED_SKIPS or _backend_problem()) and session.exitstatus in ok:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput"):
        return
    if _UNEXPECTED_SKIPS:
        terminalreporter.section("unexpected skips (not in tests/allowed_skips.py)", red=True)
        for nodeid, reason in _UNEXPECTED_SKIPS:
            terminalreporter.line(f"{nodeid}: {reason}", red=True)
        terminalreporter.line(f"{len(_UNEXPECTED_SKIPS)} unexpected skip(s) fail the session",
                              red=True)
    problem = _backend_problem()
    if problem:
        terminalreporter.section("ONNX backend suite", red=True)
        terminalreporter.line(problem, red=True)
