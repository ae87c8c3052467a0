"""The policy for tests that need a Debian program beyond Python (chromium, pgbouncer): skipped with a
reason naming the program and its installer where it is missing, a failure where CI requires it."""

from __future__ import annotations

import pytest

from wallet_service.tests.servers import REQUIRE_TOOLS, system_tool


@pytest.fixture
def empty_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(REQUIRE_TOOLS, raising=False)
    return tmp_path


def test_a_missing_tool_skips_the_test_and_says_how_to_install_it(empty_path):
    with pytest.raises(pytest.skip.Exception) as skipped:
        system_tool("pgbouncer", installer="scripts/install_pgbouncer.sh", also=(str(empty_path / "nothing"),))
    assert str(skipped.value) == (
        "pgbouncer is not installed: run scripts/install_pgbouncer.sh (apt-get install pgbouncer; .ci/run does it); "
        f"{REQUIRE_TOOLS}=1 makes this a failure"
    )


@pytest.mark.parametrize("value", ["1", "true"])
def test_where_ci_requires_the_tools_a_missing_one_fails_the_test(empty_path, monkeypatch, value):
    monkeypatch.setenv(REQUIRE_TOOLS, value)
    with pytest.raises(pytest.fail.Exception, match=f"chromium is not installed.*{REQUIRE_TOOLS} requires it"):
        system_tool("chromium", installer="scripts/install_chromium.sh")


def test_a_tool_on_the_path_or_at_a_known_place_is_found(empty_path, monkeypatch):
    monkeypatch.setenv(REQUIRE_TOOLS, "1")
    elsewhere = empty_path / "sbin"
    elsewhere.mkdir()
    for program in (empty_path / "chromium", elsewhere / "pgbouncer"):
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    assert system_tool("chromium", installer="-") == str(empty_path / "chromium")
    assert system_tool("pgbouncer", installer="-", also=(str(elsewhere / "pgbouncer"),)) == str(elsewhere / "pgbouncer")
