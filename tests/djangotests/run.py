"""Run Django's own runserver tests (tests/admin_scripts) with runcserver's Command.

    python -m tests.djangotests.run TESTS_DIR RESULT_JSON

TESTS_DIR holds the installed Django's tests/admin_scripts (tests.djangotests.sdist). The
module's ``RunserverCommand`` becomes runcserver's Command, so every test that builds,
subclasses or calls it tests runcserver; the tests that start a ``manage.py runserver``
process run ``runcserver`` instead. Each outcome is written to RESULT_JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import unittest
from typing import Any

# Tests that cannot apply to runcserver by design, with the reason.
EXCLUDED = {
    "ManageRunserver.test_skip_checks": (
        "calls the command by its name 'runserver' and stubs django.core.servers.basehttp"
        ".run(), which runcserver does not use (it would start its own server and serve "
        "forever); runcserver's --skip-checks is tested with a real server in "
        "tests/test_runcserver.py::test_skip_checks"
    ),
}

# Classes of tests/admin_scripts/tests.py run as they are (with RunserverCommand replaced).
IN_PROCESS = ("ManageRunserver", "ManageRunserverMigrationWarning")
# Classes that start `manage.py runserver` in a generated project: run with runcserver.
BY_COMMAND_LINE = ("ManageRunserverEmptyAllowedHosts", "ManageRunserverHelpOutput")


def as_runcserver(base: type) -> type:
    """A subclass whose generated project installs cserver and runs runcserver.

    runcserver is a command of the cserver app, so it exists only in a project whose
    settings install cserver: where a test writes no settings (runserver needs none), the
    adapted test writes the default ones first.
    """

    class Adapted(base):  # type: ignore[valid-type, misc]
        def write_settings(self, filename: str, *args: Any, sdict: Any = None, **kwargs: Any):
            sdict = {**(sdict or {}), "INSTALLED_APPS": "[*INSTALLED_APPS, 'cserver']"}
            return super().write_settings(filename, *args, sdict=sdict, **kwargs)

        def run_manage(self, args: list[str], *rest: Any, **kwargs: Any):
            if not os.path.exists(os.path.join(self.test_dir, "settings.py")):
                self.write_settings("settings.py")
            args = ["runcserver" if arg == "runserver" else arg for arg in args]
            return super().run_manage(args, *rest, **kwargs)

    Adapted.__name__ = Adapted.__qualname__ = base.__name__
    return Adapted


class Recorder(unittest.TestResult):
    """Keeps each test's outcome by "Class.test_name"."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, dict[str, str]] = {}

    @staticmethod
    def name(test: unittest.TestCase) -> str:
        return f"{type(test).__name__}.{test._testMethodName}"

    def _put(self, test: unittest.TestCase, outcome: str, detail: str = "") -> None:
        # A failing subtest or cleanup must not be overwritten by a later success.
        if self.outcomes.get(self.name(test), {}).get("outcome") in ("failed", "error"):
            return
        self.outcomes[self.name(test)] = {"outcome": outcome, "detail": detail}

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._put(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._put(test, "failed", "".join(traceback.format_exception(*err)))

    def addError(self, test: Any, err: Any) -> None:
        if isinstance(test, unittest.TestCase):
            self._put(test, "error", "".join(traceback.format_exception(*err)))
        else:  # setUpClass and the like
            self.outcomes[str(test)] = {
                "outcome": "error",
                "detail": "".join(traceback.format_exception(*err)),
            }

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self._put(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._put(test, "failed", "expected failure: Django marks it as failing")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        self._put(test, "passed")


def build_suite(module: Any) -> tuple[unittest.TestSuite, dict[str, str]]:
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    excluded: dict[str, str] = {}
    classes = [getattr(module, name) for name in IN_PROCESS]
    classes += [as_runcserver(getattr(module, name)) for name in BY_COMMAND_LINE]
    for cls in classes:
        for method in loader.getTestCaseNames(cls):
            key = f"{cls.__name__}.{method}"
            if key in EXCLUDED:
                excluded[key] = EXCLUDED[key]
            else:
                suite.addTest(cls(method))
    return suite, excluded


def main(tests_dir: str, result_path: str) -> int:
    sys.path.insert(0, tests_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.djangotests.settings"
    # Only defaults: no CSERVER_* variable or .env of the caller may change what runs.
    for name in [name for name in os.environ if name.startswith("CSERVER_")]:
        del os.environ[name]
    os.chdir(tests_dir)
    import django

    django.setup()
    from django.test.runner import DiscoverRunner

    from cserver.management.commands.runcserver import Command

    module = importlib.import_module("admin_scripts.tests")
    module.RunserverCommand = Command
    suite, excluded = build_suite(module)
    runner = DiscoverRunner(verbosity=0, interactive=False)
    runner.setup_test_environment()
    old_config = runner.setup_databases()
    recorder = Recorder()
    try:
        suite.run(recorder)
    finally:
        runner.teardown_databases(old_config)
        runner.teardown_test_environment()
    report = {"django": django.get_version(), "tests": recorder.outcomes, "excluded": excluded}
    with open(result_path, "w") as out:
        json.dump(report, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
