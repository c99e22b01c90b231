"""The choices given to `cserver init`, kept in compose.yaml so that a re-run makes the same stack.

compose.yaml carries one line `x-cserver: {...}` (JSON, which is also YAML; Compose ignores
`x-` keys). Only what the user chose with a flag is recorded: what init detects is detected
again, so a project that gains fixtures or a media directory gets them on the next run.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, fields, replace
from pathlib import Path

from cserver.stack.detect import Overrides

KEY = "x-cserver"
_LINE = re.compile(rf"^{KEY}:\s*(\{{.*\}})\s*$", re.M)


def recorded_overrides(root: Path) -> Overrides:
    """What an earlier `cserver init` was told (all None when there is nothing to read)."""
    path = root / "compose.yaml"
    try:
        match = _LINE.search(path.read_text(encoding="utf-8"))
        values = json.loads(match.group(1)) if match else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return Overrides()
    known = {f.name for f in fields(Overrides)}
    return Overrides(**{k: v for k, v in values.items() if k in known})


def merged(given: Overrides, recorded: Overrides) -> Overrides:
    """given, with each value not given on this command line taken from recorded."""
    missing = {k: v for k, v in asdict(recorded).items() if getattr(given, k) is None}
    return replace(given, **missing)


def record_line(overrides: Overrides) -> str:
    """The compose.yaml line recording overrides (the values not None)."""
    chosen = {k: v for k, v in asdict(overrides).items() if v is not None}
    return f"{KEY}: {json.dumps(chosen, sort_keys=True)}"
