"""`cserver init [PATH]`: write the compose dev environment into an existing Django project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cserver.stack.detect import DetectError, Overrides, Project, detect
from cserver.stack.envmap import project_variables, unset_required
from cserver.stack.recorded import merged, recorded_overrides
from cserver.stack.render import render
from cserver.stack.services import with_sides
from cserver.stack.write_plan import FileChange, apply_plan, plan_files

PROG = "cserver init"

DESCRIPTION = """\
Write compose.yaml, docker/Dockerfile (with a wheel of this cserver next to it), .dockerignore,
.gitignore and .env.example into a Django project, from what its files say. Nothing of the
project is lost: the lines .dockerignore and .gitignore lack are appended to them; any other
file that exists and differs is shown as a diff and replaced only with --force, which keeps
yours as NAME.orig. The choices given as options are recorded in compose.yaml, so a second
run makes the same stack (and changes nothing)."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of `cserver init`."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("path", nargs="?", default=".", help="the project (default: .)")
    parser.add_argument(
        "--dry-run", action="store_true", help="show the plan, with diffs; write nothing"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace files that differ (keeping NAME.orig)"
    )
    parser.add_argument(
        "--settings", metavar="MODULE", help="settings module (default: manage.py's)"
    )
    parser.add_argument(
        "--deps",
        metavar="FILE",
        help="dependency list: a requirements file, pyproject.toml or uv.lock (default: detected)",
    )
    parser.add_argument("--python", metavar="X.Y", help="Python line of the image")
    parser.add_argument(
        "--database",
        choices=["url", "cserver"],
        help="url: the settings read DATABASE_URL; cserver: cserver sets DATABASES['default'] "
        "from CSERVER_DATABASE_URL in the commands it runs",
    )
    parser.add_argument(
        "--media-dir", metavar="DIR", help="MEDIA_ROOT inside the project ('' for none)"
    )
    parser.add_argument(
        "--static-root", metavar="DIR", help="STATIC_ROOT inside the project ('' for none)"
    )
    parser.add_argument(
        "--bootstrap",
        metavar="COMMAND",
        help="run once after migrate, e.g. 'python manage.py loaddata initial' "
        "(default: loaddata of the fixtures found; '' for none)",
    )
    parser.add_argument(
        "--dev-deps",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="install the lock file's dev dependency groups too (default: no)",
    )
    parser.add_argument(
        "--with",
        dest="with_sides",
        metavar="KINDS",
        help="generate these even if not detected, or fail saying why not: "
        "worker,beat,redis,assets (recorded for the next run)",
    )
    parser.add_argument(
        "--without",
        dest="without_sides",
        metavar="KINDS",
        help="leave these out although detected: worker,beat,redis,assets ('' for none; "
        "recorded for the next run)",
    )
    return parser


def _print_plan(changes: list[FileChange], dry_run: bool, force: bool) -> None:
    for change in changes:
        if change.action == "unchanged":
            print(f"  unchanged    {change.name}")
        elif change.action == "new":
            print(f"  would write  {change.name}")
        elif change.action == "refresh":
            print(f"  would refresh {change.name} (this cserver's build)")
        elif change.action == "merge":
            print(f"  would merge  {change.name} (+ {', '.join(change.added_lines())})")
        else:
            verb = "would replace" if force else "differs"
            print(f"  {verb:<12} {change.name}" + (" (yours kept as .orig)" if force else ""))
            if dry_run or not force:
                _print_diff(change)


def _print_diff(change: FileChange) -> None:
    for line in change.diff():
        print(f"      {line}")


def _print_variables(project: Project) -> None:
    """The settings' variables the stack does not set: .env has to."""
    for variable in unset_required(project_variables(project)):
        print(
            f"  needs        {variable.read.name} in .env: {variable.read.where} reads it "
            "and the stack does not set it"
        )


def main(argv: list[str]) -> int:
    """Run `cserver init`; return the exit status."""
    options = build_parser().parse_args(argv)
    given = Overrides(
        settings=options.settings,
        deps=options.deps,
        python=options.python,
        database=options.database,
        media_dir=options.media_dir,
        static_root=options.static_root,
        bootstrap=options.bootstrap,
        dev_deps=options.dev_deps,
        with_sides=options.with_sides,
        without_sides=options.without_sides,
    )
    root = Path(options.path)
    chosen = merged(given, recorded_overrides(root)) if root.is_dir() else given
    try:
        project = with_sides(detect(root, chosen), chosen.with_sides, chosen.without_sides)
    except DetectError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"Project {project.root}:")
    for line in project.report():
        print(f"  {line}")
    changes = plan_files(project.root, render(project, chosen))
    different = [c.name for c in changes if c.action == "differs"]
    if options.dry_run:
        _print_plan(changes, dry_run=True, force=options.force)
        _print_variables(project)
        print("Dry run: nothing was written.")
        return 0
    if different and not options.force:
        _print_plan(changes, dry_run=False, force=False)
        names = " and ".join(different)
        verb = "differs" if len(different) == 1 else "differ"
        print(
            f"{PROG}: error: {names} {verb} from what init writes (diff above); nothing was "
            "written: --force replaces, keeping NAME.orig",
            file=sys.stderr,
        )
        return 1
    for line in apply_plan(project.root, changes, force=options.force):
        print(f"  {line}")
    _print_variables(project)
    print("Next: cserver doctor, then docker compose up --build (or docker compose watch)")
    return 0
