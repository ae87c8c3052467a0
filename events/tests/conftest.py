import pytest

from events.webhooks import client


@pytest.fixture(autouse=True)
def no_kept_connections():
    """Each test's receivers are its own: connections the client kept alive do not outlive the test."""
    yield
    client.close_idle_connections()
