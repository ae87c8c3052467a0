"""The fuzzing test's count of generated requests, printed at the end of the run (after output capture)."""

from __future__ import annotations

import pytest

FUZZ_SUMMARY = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in config.stash.get(FUZZ_SUMMARY, []):
        terminalreporter.write_line(line)
