"""One URL redactor for the probe, the demo's settings and CSERVER_DATABASE_URL."""

from __future__ import annotations

import pytest

from cserver.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgres://u:pw@h:5432/d", "postgres://u:***@h:5432/d"),
        ("postgresql://u:pw@h/d", "postgresql://u:***@h/d"),
        # The probe's former masker only knew schemes urlsplit parses; these are the same now.
        ("mysql://u:pw@h/d", "mysql://u:***@h/d"),
        ("http://u:pw@127.0.0.1:8000/x", "http://u:***@127.0.0.1:8000/x"),
        ("postgres://u:p@w@h/d", "postgres://u:***@h/d"),  # unencoded @ in the password
        ("postgres://h:secret/d", "postgres://h:***/d"),  # password typed without user@
        ("postgres://[::1:5432/d", "postgres://[::1:5432/d"),  # malformed, nothing secret
        ("http://127.0.0.1:8000/whoami", "http://127.0.0.1:8000/whoami"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
