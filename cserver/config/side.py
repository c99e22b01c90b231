"""Side processes: what a project runs next to its web server (workers, schedulers, watchers).

One declaration feeds both places they run: `cserver init` turns each into a compose
service, and `cserver dev` runs each locally next to runcserver. A declaration is a name and
either a command line or a table::

    CSERVER_SIDE_PROCESSES='{"tailwind": "npx tailwindcss -i in.css -o static/app.css --watch"}'
    CSERVER = {"side_processes": {"rq": {"command": "python manage.py rqworker",
                                         "reload": True, "needs": ["redis"]}}}

In the environment and .env the value is JSON; in Django settings it is a dict.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode

# Services of the generated stack a side process can wait for (compose `depends_on`).
Service = Literal["db", "redis", "migrate"]
# Which image runs it in the stack: the project's own, or Node.js for front-end tools.
Image = Literal["app", "node"]
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
# A command needing a shell to mean what it says runs under `sh -c`; others run directly.
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?~{}\[\]\\\n]")

SHAPE = (
    '{"NAME": "COMMAND"} or {"NAME": {"command": "COMMAND", "reload": true, '
    '"needs": ["db", "redis"], "image": "app"}}'
)


class SideProcess(BaseModel):
    """One process that runs next to the web server, locally and in the stack."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: str = Field(min_length=1, description="the command line, as typed in a shell")
    reload: bool = Field(False, description="restart when Python code changes")
    needs: tuple[Service, ...] = Field((), description="stack services it waits for")
    image: Image = Field("app", description="app: the project's image; node: Node.js")
    healthcheck: str | None = Field(
        None, description="a command that exits 0 while the process does its work"
    )
    output: str | None = Field(
        None,
        description="a directory inside the project it writes and web serves (built assets): "
        "the stack shares it between the two",
        pattern=r"^[\w.-]+(/[\w.-]+)*$",
    )

    def argv(self) -> list[str]:
        """The command as an argument list: direct when plain, through `sh -c` otherwise."""
        if _SHELL_SYNTAX.search(self.command):
            return ["sh", "-c", self.command]
        return shlex.split(self.command)


def _parse(value: Any) -> Any:
    """JSON text (environment, .env) to a dict; a bare command string to its table form."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PydanticCustomError(
                "side_json",
                "not JSON ({reason}): expected {shape}",
                {"reason": exc.msg, "shape": SHAPE},
            ) from None
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "side_shape",
            "a {kind}: expected {shape}",
            {"kind": type(value).__name__, "shape": SHAPE},
        )
    tables: dict[str, Any] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise PydanticCustomError(
                "side_name",
                "side process name '{name}': expected lower-case letters, digits, - and _, "
                "starting with a letter",
                {"name": name},
            )
        tables[name] = {"command": entry} if isinstance(entry, str) else entry
    return tables


SideProcesses = Annotated[dict[str, SideProcess], NoDecode, BeforeValidator(_parse)]
