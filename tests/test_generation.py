"""A generation's change-following thread never holds work across a fork (fork mode)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cserver import generation


def test_fork_waits_until_a_change_message_is_handled(monkeypatch) -> None:
    from django.utils import autoreload

    read_end, write_end = os.pipe()
    monkeypatch.setenv(generation.CHANGES_FD_ENV, str(read_end))
    started, finished = threading.Event(), threading.Event()
    timeline: list[str] = []

    def slow_receiver(sender, file_path: Path, **kwargs) -> None:
        # Stands for a receiver that writes output or takes a logging lock meanwhile.
        started.set()
        time.sleep(0.5)
        timeline.append("handled")
        finished.set()

    autoreload.file_changed.connect(slow_receiver, weak=False)
    try:
        generation.follow_changes(lambda: None)
        os.write(write_end, b"/tmp/page.html\n")
        assert started.wait(5)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        timeline.append("forked")
        os.waitpid(pid, 0)
        assert finished.wait(5)
        assert timeline == ["handled", "forked"]
    finally:
        autoreload.file_changed.disconnect(slow_receiver)
        os.close(write_end)
