"""`cserver init [PATH]`: write the compose dev environment into an existing Django project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cserver.stack.detect import DetectError, Overrides, detect
from cserver.stack.render import render

PROG = "cserver init"

DESCRIPTION = """\
Write compose.yaml, docker/Dockerfile (with a wheel of this cserver next to it), .dockerignore
and .env.example into a Django project, from what its files say. Nothing else is changed; an
existing file is never overwritten without --force, and a second run changes nothing."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of `cserver init`."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("path", nargs="?", default=".", help="the project (default: .)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be written")
    parser.add_argument("--force", action="store_true", help="overwrite files that differ")
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
    return parser


def plan(root: Path, files: dict[str, bytes]) -> tuple[list[str], list[str], list[str]]:
    """(new, unchanged, different) relative paths."""
    new, same, different = [], [], []
    for name, data in files.items():
        path = root / name
        if not path.exists():
            new.append(name)
        elif path.is_file() and path.read_bytes() == data:
            same.append(name)
        else:
            different.append(name)
    return new, same, different


def main(argv: list[str]) -> int:
    """Run `cserver init`; return the exit status."""
    options = build_parser().parse_args(argv)
    overrides = Overrides(
        settings=options.settings,
        deps=options.deps,
        python=options.python,
        database=options.database,
        media_dir=options.media_dir,
        static_root=options.static_root,
    )
    try:
        project = detect(Path(options.path), overrides)
    except DetectError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"Project {project.root}:")
    for line in project.report():
        print(f"  {line}")
    files = render(project)
    _, same, different = plan(project.root, files)
    if different and not options.force:
        for name in different:
            print(
                f"{PROG}: error: {name} exists and differs from what init writes; "
                "nothing was written (--force overwrites, --dry-run shows the plan)",
                file=sys.stderr,
            )
        return 1
    verb = "would write" if options.dry_run else "wrote"
    for name in sorted(files):
        if name in same:
            print(f"  unchanged    {name}")
        elif not options.dry_run:
            target = project.root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[name])
            print(f"  {verb:<12} {name}")
        else:
            print(f"  {verb:<12} {name}" + (" (overwriting)" if name in different else ""))
    if options.dry_run:
        print("Dry run: nothing was written.")
    else:
        print("Next: cserver doctor, then docker compose up --build (or docker compose watch)")
    return 0
