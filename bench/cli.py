"""What the benchmark scripts share on their command line: one-line usage errors, a
timestamped progress log on stderr, and SIGTERM unwinding like Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn


def usage_error(script: str, message: str) -> NoReturn:
    """``script: message`` on stderr, exit status 2."""
    print(f"{script}: {message}", file=sys.stderr)
    raise SystemExit(2)


def parser(script: str, description: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser whose errors are one line naming the script, exit status 2."""

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            usage_error(script, f"{message} (see --help)")

    return Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)


def log(message: str) -> None:
    """One progress line on stderr with the time, so stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_script(script: str, main: Callable[[], int]) -> NoReturn:
    """Exit with main()'s status; SIGTERM unwinds like Ctrl-C, so every finally block
    stops its servers, and an interrupted run exits 130."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print(f"{script}: interrupted; servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
