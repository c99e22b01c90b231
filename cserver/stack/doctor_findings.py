"""One line of `cserver doctor`'s output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A warning is worth acting on but does not stop `docker compose up`; a problem does.
Level = Literal["ok", "note", "warning", "problem"]


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str

    def line(self) -> str:
        return f"{self.level:<8}{self.text}"


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
