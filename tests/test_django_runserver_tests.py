"""Django's own tests of runserver (admin_scripts, from the installed release's sdist) pass
against runcserver's Command; tests.djangotests.run says what runs and what is excluded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import django
import pytest

from tests.djangotests import run, sdist
from tests.serverproc import ROOT

CLASSES = (*run.IN_PROCESS, *run.BY_COMMAND_LINE)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        tests_dir = sdist.tests_dir()
    except sdist.SdistUnavailable as exc:
        if os.environ.get(sdist.REQUIRE_ENV) == "1":
            pytest.fail(f"{exc} ({sdist.REQUIRE_ENV}=1)")
        pytest.skip(f"{exc} (set {sdist.REQUIRE_ENV}=1 to fail instead)")
    result_path = tmp_path_factory.mktemp("django-runserver-tests") / "result.json"
    # Its own process group: a runcserver that a Django test started by mistake (and that
    # would serve forever) dies with the runner on a timeout.
    runner = subprocess.Popen(
        [sys.executable, "-m", "tests.djangotests.run", str(tests_dir), str(result_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = runner.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    assert runner.returncode == 0, stderr[-4000:]
    return json.loads(Path(result_path).read_text())


def test_the_installed_django_was_tested(report: dict[str, Any]) -> None:
    assert report["django"] == django.get_version()


@pytest.mark.parametrize("cls", CLASSES)
def test_djangos_runserver_tests_pass_against_runcserver(report: dict[str, Any], cls: str) -> None:
    ran = {name: result for name, result in report["tests"].items() if name.startswith(cls + ".")}
    assert ran, f"no test of {cls} ran"
    not_passed = {name: r for name, r in ran.items() if r["outcome"] != "passed"}
    details = "\n\n".join(
        f"{name}: {r['outcome']}\n{r['detail']}" for name, r in not_passed.items()
    )
    assert not not_passed, details


def test_every_exclusion_names_a_test_of_this_release(report: dict[str, Any]) -> None:
    # An exclusion whose test is gone (renamed upstream) would hide nothing and mislead.
    assert set(report["excluded"]) == set(run.EXCLUDED)
    assert not set(report["excluded"]) & set(report["tests"])


def test_errors_outside_a_test_are_reported(report: dict[str, Any]) -> None:
    # setUpClass failures are keyed by the suite's name, not "Class.test".
    stray = {k: v for k, v in report["tests"].items() if k.split(".")[0] not in CLASSES}
    assert not stray, stray


def _sdist(directory: Path, version: str, files: dict[str, str]) -> None:
    import io
    import tarfile

    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / f"Django-{version}.tar.gz", "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"django-{version}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"django-{version}/tests/admin_scripts/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)


def test_sdist_cache_unpacks_only_the_test_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSERVER_CACHE_DIR", str(tmp_path))
    files = {
        "tests/admin_scripts/tests.py": "x = 1\n",
        "tests/user_commands/utils.py": "y = 2\n",
        "tests/other_app/tests.py": "",
        "django/__init__.py": "",  # must not shadow the installed Django
    }
    _sdist(tmp_path / "django-tests" / "sdist", "9.9", files)
    found = sdist.tests_dir("9.9")
    assert (found / "admin_scripts" / "tests.py").read_text() == "x = 1\n"
    assert (found / "user_commands" / "utils.py").exists()
    assert not (found / "other_app").exists()
    assert not (found.parent / "django").exists()
    assert not (found / "admin_scripts" / "escape").exists()
    # Cached: the archive is no longer needed.
    (tmp_path / "django-tests" / "sdist" / "Django-9.9.tar.gz").unlink()
    assert sdist.tests_dir("9.9") == found


def test_sdist_without_the_tests_is_unavailable_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSERVER_CACHE_DIR", str(tmp_path))
    _sdist(tmp_path / "django-tests" / "sdist", "9.8", {"django/__init__.py": ""})
    with pytest.raises(sdist.SdistUnavailable, match="holds no tests/admin_scripts"):
        sdist.tests_dir("9.8")
    assert not (tmp_path / "django-tests" / "9.8").exists()
