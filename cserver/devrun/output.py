"""One stream for many processes: each line prefixed with the name of the process it came from.

As foreman and honcho print a Procfile's processes: ``web    | GET / 200``. On a terminal each
name gets a colour of its own, unless NO_COLOR is set (https://no-color.org) or
``--no-color`` is given; piped into a file or a CI log the lines stay plain. Lines from
different processes never interleave inside a line: each is written whole under a lock.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO

OWN_NAME = "cserver"
# Bright colours that read on dark and light terminals alike; red is kept for cserver's own
# warnings, so no process looks like an error because of its colour.
_PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
_RESET = "\x1b[0m"


def use_colour(stream: TextIO, no_color_flag: bool) -> bool:
    """Colours only on a terminal, and only when neither NO_COLOR nor --no-color says no."""
    if no_color_flag or os.environ.get("NO_COLOR", ""):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Output:
    """Writes ``name | line`` for every process, padded so the bars line up."""

    def __init__(self, names: list[str], *, colour: bool, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._colour = colour
        self._lock = threading.Lock()
        self._width = max(len(name) for name in [OWN_NAME, *names])
        self._codes = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}

    def line(self, name: str, text: str) -> None:
        """One line of a process's output (its trailing newline already removed)."""
        prefix = f"{name:<{self._width}} |"
        if self._colour:
            code = "1;31" if name == OWN_NAME else self._codes.get(name, "0")
            prefix = f"\x1b[{code}m{prefix}{_RESET}"
        with self._lock:
            try:
                self._stream.write(f"{prefix} {text}\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # a closed terminal or pipe must not stop the processes

    def say(self, text: str) -> None:
        """A line of cserver dev's own: starts, exits, restarts and warnings."""
        self.line(OWN_NAME, text)
