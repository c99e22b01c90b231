"""The test files of the installed Django release, from its sdist (wheels carry no tests).

The sdist is fetched once with pip and cached with the extracted files under
$CSERVER_CACHE_DIR (default ~/.cache/cserver), one directory per Django version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django

# The test packages the runner imports: admin_scripts, and the helper module that newer
# admin_scripts/tests.py import from user_commands.
TEST_PACKAGES = ("admin_scripts", "user_commands")
REQUIRE_ENV = "CSERVER_REQUIRE_DJANGO_SDIST"
FETCH_TIMEOUT = 300  # seconds for pip, which builds the sdist's metadata


class SdistUnavailable(RuntimeError):
    """The sdist could not be fetched or read; the message says why."""


def cache_root() -> Path:
    root = os.environ.get("CSERVER_CACHE_DIR") or Path.home() / ".cache" / "cserver"
    return Path(root) / "django-tests"


def tests_dir(version: str | None = None) -> Path:
    """A directory holding Django's tests/<package> trees for ``version`` (the installed one)."""
    version = version or django.get_version()
    target = cache_root() / version
    done = target / ".complete"
    if done.exists():
        return target / "tests"
    sdist = _fetch(version, cache_root() / "sdist")
    _extract(sdist, target)
    done.write_text(sdist.name + "\n")
    return target / "tests"


def _fetch(version: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    found = _sdist_in(into, version)
    if found:
        return found
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--dest",
        str(into),
        f"django=={version}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SdistUnavailable(f"pip download of Django {version}'s sdist failed: {exc}") from None
    found = _sdist_in(into, version)
    if result.returncode != 0 or found is None:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SdistUnavailable(f"pip download of Django {version}'s sdist failed: {last}")
    return found


def _sdist_in(directory: Path, version: str) -> Path | None:
    # Older sdists are named Django-X.tar.gz, newer ones django-X.tar.gz.
    for path in directory.iterdir():
        if path.name.lower() == f"django-{version}.tar.gz":
            return path
    return None


def _extract(sdist: Path, target: Path) -> None:
    """Unpack only tests/<package>/ of TEST_PACKAGES, atomically (a crash leaves nothing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with tarfile.open(sdist) as archive:
            members = []
            for member in archive.getmembers():
                parts = Path(member.name).parts  # django-X/tests/<package>/...
                if len(parts) > 3 and parts[1] == "tests" and parts[2] in TEST_PACKAGES:
                    if not (member.isfile() or member.isdir()):
                        continue  # no links or devices from an archive
                    member.name = str(Path(*parts[1:]))
                    members.append(member)
            if not members:
                raise SdistUnavailable(f"{sdist.name} holds no tests/admin_scripts")
            # The "data" filter (Python 3.10.12+) refuses absolute paths and escapes too.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(staging, members=members, **safe)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except (OSError, tarfile.TarError) as exc:
        raise SdistUnavailable(f"cannot unpack {sdist}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
