"""The documentation page in a real browser: Debian's chromium, headless, loads /docs from a
running the server with every host but the loopback unresolvable (so the page must work offline),
and the rendered page must show the charge operation. A screenshot is kept in var/artifacts/docs.png.

chromium comes from scripts/install_chromium.sh, which CI (.ci/run) runs; from a developer's shell
without it this test is skipped and says how to install it (a failure when .ci/run requires it:
``system_tool`` in servers.py).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from wallet_service.config import BASE_DIR
from wallet_service.tests.servers import Server, system_tool

pytestmark = pytest.mark.slow

SCREENSHOT = BASE_DIR / "var" / "artifacts" / "docs.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Offline: no name but the loopback resolves, so a page that needs a CDN would show nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    # Time runs fast and the page is read once its scripts have run and the schema has loaded.
    "--virtual-time-budget=20000",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    return system_tool("chromium", installer="scripts/install_chromium.sh")


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    # /docs and /schema never touch the database.
    directory = tmp_path_factory.mktemp("docs")
    server = Server({"DATABASE_URL": os.environ["DATABASE_URL"]}, directory / "server.log", workers=1)
    yield server.start()
    server.stop()


def run_chromium(chromium: str, profile, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_docs_page_renders_the_charge_operation_offline_in_a_real_browser(chromium, docs_server, tmp_path):
    url = f"{docs_server.base}/docs"
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url).stdout
    # Rendered by Swagger UI from /schema: present only if the scripts ran and the schema loaded.
    assert 'id="operations-wallets-walletCharge"' in dom, dom[-3000:]
    assert "Charge a wallet (companies)" in dom
    assert "/wallet/charge" in dom
    assert "Wallet service API" in dom

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    run_chromium(
        chromium,
        tmp_path / "profile-screenshot",
        "--window-size=1280,1400",
        "--hide-scrollbars",
        f"--screenshot={SCREENSHOT}",
        url,
    )
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SCREENSHOT.stat().st_size > 20_000  # a blank page is a few kilobytes
