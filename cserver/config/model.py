"""The settings model: the one declaration of every cserver setting.

Each field carries all there is to know about its setting: type, bounds and default, the
meaning (``description``, shown by ``--help`` and written into ``.env.example``) and how it
is typed on the command line (a ``Cli`` in its metadata). The environment variable is
``CSERVER_`` plus the field name, as pydantic-settings reads it (``env_prefix``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cserver.booleans import Bool
from cserver.config.side import SideProcesses
from cserver.config.sources import ENV_PREFIX, ConfigError, Origin, gather
from cserver.debug.address import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DebugAddressError,
    format_address,
    parse_debug_address,
)

Mode = Literal["thread", "pool", "fork", "asgi"]


# The defaults of the request head limits, gunicorn's (its limit_request_line,
# limit_request_field_size and limit_request_fields); server/limits.py takes them from here.
DEFAULT_REQUEST_LINE_BYTES = 4094
DEFAULT_HEADER_BYTES = 8190
DEFAULT_HEADERS = 100

# The flag of a setting that no command line takes (it belongs to the stack, not the server).
NO_FLAG = "-"


@dataclass(frozen=True)
class Cli:
    """How a setting is typed on the command line."""

    flag: str  # as typed, and as messages and sources name it: "--workers", "addrport"
    metavar: str = ""  # set for a flag followed by a value
    # A flag without a value sets the setting "on" (True), "off" (False), or "both"
    # (--delay / --no-delay).
    switch: Literal["", "on", "off", "both"] = ""
    aliases: tuple[str, ...] = ()
    dest: str = ""  # runserver's own option name where it already has the flag
    help: str = ""  # when the flag says something else than the setting's description
    # For a flag whose value may be left out (--debugpy, --debugpy=5678): what it means bare.
    bare: str = ""


def cli_of(info: FieldInfo) -> Cli:
    """The command-line declaration of a field."""
    return next(m for m in info.metadata if isinstance(m, Cli))


def _strip_brackets(value: Any) -> Any:
    # "[::1]" is how people write IPv6 next to a port; accept it and store the bare address.
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return value[1:-1]
    return value


Addr = Annotated[
    str,
    StringConstraints(min_length=1, pattern=r"^[^\s\[\]/]+$"),
    BeforeValidator(_strip_brackets),
]


def _debug_address(value: Any) -> Any:
    # Stored as "host:port" (or "" for off), so every source's spelling compares equal.
    if isinstance(value, bool):
        value = "true" if value else ""
    if not isinstance(value, str | int):
        return value
    try:
        address = parse_debug_address(str(value))
    except DebugAddressError as exc:
        raise PydanticCustomError("debug_address", str(exc)) from None
    return format_address(*address) if address else ""


DebugAddress = Annotated[str, BeforeValidator(_debug_address)]


def _default_addr(data: dict[str, Any]) -> str:
    # Like runserver -6: the IPv6 loopback, unless some source named an address.
    return "::1" if data.get("ipv6") else "127.0.0.1"


def delay_range_problem(low: int, where_low: str, high: int, where_high: str) -> str:
    """The message for a delay minimum above its maximum, naming where each came from."""
    return (
        f"delay min {low} ({where_low}) is above delay max {high} ({where_high}): "
        "min must be <= max"
    )


def processes_problem(processes: str, mode: str) -> str:
    """The message for processes > 1 in fork mode, naming both as the user wrote them."""
    return (
        f"{processes} does not go with {mode}: fork mode already serves each connection in "
        "a process of its own; use --mode pool or thread with --processes"
    )


# Values load_config() has already gathered, handed to the model while it validates them,
# so that building the model reads no source a second time.
_GATHERED: ContextVar[Mapping[str, Any] | None] = ContextVar("cserver_gathered", default=None)


class _GatheredSource(PydanticBaseSettingsSource):
    """The model's only source: every cserver source, merged by sources.gather()."""

    def __init__(self, settings_cls: type[BaseSettings], init_kwargs: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._init_kwargs = init_kwargs

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Required by the base class; __call__ reads all fields at once."""
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        given = _GATHERED.get()
        if given is not None:
            return dict(given)
        fields = self.settings_cls.model_fields
        # Keyword arguments stand where flags do: above every other source.
        init = {k: (v, Origin("flag", k)) for k, v in self._init_kwargs.items() if k in fields}
        gathered = gather(self.settings_cls, init)
        if gathered.problems:
            raise ConfigError(gathered.problems)
        return dict(gathered.values)


class ServerConfig(BaseSettings):
    """Everything runcserver needs to know, validated; ServerConfig() alone reads all sources."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        # compose passes `CSERVER_SEED=${CSERVER_SEED:-}` as an empty string: that means unset.
        env_ignore_empty=True,
        # .env files also hold DATABASE_URL, DJANGO_* and the like.
        extra="ignore",
        frozen=True,
    )

    mode: Annotated[Mode, Cli("--mode", metavar="{thread,pool,fork,asgi}")] = Field(
        "thread",
        description="concurrency model: thread, pool, fork, or asgi (the ASGI application "
        'served by uvicorn: pip install "cserver[asgi]")',
    )
    workers: Annotated[int, Cli("--workers", metavar="N")] = Field(
        8,
        ge=1,
        le=1024,
        description="pool size; in fork mode the cap on live children; in asgi mode the "
        "requests computed at once (until their response starts) (1 to 1024)",
    )
    # Like gunicorn's -w N next to --threads: N processes forked from the loaded project,
    # each a full server of the chosen mode. Declared after mode: _processes_fit_mode reads it.
    processes: Annotated[int, Cli("--processes", metavar="N")] = Field(
        1,
        ge=1,
        le=64,
        description="worker processes sharing the socket, each with its own threads (1 to 64)",
    )
    # Declared before addr: addr's default depends on it.
    ipv6: Annotated[Bool, Cli("--ipv6", switch="on", aliases=("-6",), dest="use_ipv6")] = Field(
        False, description="use an IPv6 address"
    )
    addr: Annotated[Addr, Cli("addrport")] = Field(
        default_factory=_default_addr, description="listening address (::1 with --ipv6)"
    )
    port: Annotated[int, Cli("addrport")] = Field(
        8000, ge=0, le=65535, description="listening port (0 = any free port)"
    )
    reload: Annotated[
        Bool, Cli("--noreload", switch="off", dest="use_reloader", help="no autoreloader")
    ] = Field(True, description="restart on code changes, keeping the socket")
    threading: Annotated[
        Bool, Cli("--nothreading", switch="off", dest="use_threading", help="single thread")
    ] = Field(True, description="false = one request at a time")
    delay: Annotated[Bool, Cli("--delay", switch="both")] = Field(
        False, description="random delay before each request reaches Django"
    )
    delay_min_ms: Annotated[int, Cli("--delay-min", metavar="MS")] = Field(
        0, ge=0, le=60000, description="shortest random delay in milliseconds"
    )
    # validate_default: the range check below also runs when the maximum is the default.
    delay_max_ms: Annotated[int, Cli("--delay-max", metavar="MS")] = Field(
        300,
        ge=0,
        le=60000,
        validate_default=True,
        description="longest random delay in milliseconds",
    )
    seed: Annotated[int | None, Cli("--seed", metavar="N")] = Field(
        None, description="seed of the random delays; unset = picked and printed"
    )
    keepalive_timeout: Annotated[float, Cli("--keepalive-timeout", metavar="SECONDS")] = Field(
        5.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds an idle keep-alive connection stays open",
    )
    backlog: Annotated[int, Cli("--backlog", metavar="N")] = Field(
        128, ge=1, le=65535, description="listen queue length"
    )
    grace_period: Annotated[float, Cli("--grace-period", metavar="SECONDS")] = Field(
        5.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds requests in flight get on shutdown or reload",
    )
    diagnostics: Annotated[Bool, Cli("--diagnostics", switch="on")] = Field(
        False, description="X-Cserver-* headers and the /__cserver__/ status page"
    )
    # Pool/fork: watched plus busy connections; thread: threads. Bounds threads and
    # descriptors under any load.
    connection_limit: Annotated[int, Cli("--connection-limit", metavar="N")] = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="open client connections before new ones get an immediate 503",
    )
    # From a request's first byte to its complete head; slow clients get a 408.
    header_timeout: Annotated[float, Cli("--header-timeout", metavar="SECONDS")] = Field(
        10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds a client may take to send a request's headers",
    )
    max_body_bytes: Annotated[int, Cli("--max-body-bytes", metavar="BYTES")] = Field(
        10 * 1024 * 1024,
        ge=0,
        le=1 << 40,
        description="largest request body accepted (413 beyond; 0 refuses every body)",
    )
    # A client cannot make the server hold an endless head; each refusal names its setting.
    max_request_line_bytes: Annotated[int, Cli("--max-request-line-bytes", metavar="BYTES")] = (
        Field(
            DEFAULT_REQUEST_LINE_BYTES,
            ge=16,
            le=1 << 20,
            description="longest request line accepted, CRLF included (414 beyond)",
        )
    )
    max_header_bytes: Annotated[int, Cli("--max-header-bytes", metavar="BYTES")] = Field(
        DEFAULT_HEADER_BYTES,
        ge=16,
        le=1 << 20,
        description="longest header field line accepted, CRLF included (431 beyond)",
    )
    max_headers: Annotated[int, Cli("--max-headers", metavar="N")] = Field(
        DEFAULT_HEADERS,
        ge=1,
        le=10000,
        description="most header fields in a request, and trailer fields (431 beyond)",
    )
    # Lingering close: after a response that left input unread (an upload answered 403
    # unread, a 413), the server half-closes and drops what the client still sends, so the
    # client reads the whole response instead of a reset. These bound what it drops.
    linger_timeout: Annotated[float, Cli("--linger-timeout", metavar="SECONDS")] = Field(
        30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="longest a connection closing with input unread drains the client, in seconds",
    )
    # Apache's lingering close waits 2 s the same way.
    linger_idle: Annotated[float, Cli("--linger-idle", metavar="SECONDS")] = Field(
        2.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds without a byte after which a closing connection takes the "
        "client to be done and closes",
    )
    linger_bytes: Annotated[int, Cli("--linger-bytes", metavar="BYTES")] = Field(
        1024 * 1024,
        ge=0,
        le=1 << 40,
        description="bytes drained from a closing connection beyond the unread rest of a "
        "declared body; a client that sends more is cut off",
    )
    diagnostics_allow_remote: Annotated[Bool, Cli("--diagnostics-allow-remote", switch="on")] = (
        Field(False, description="serve the diagnostics to non-loopback clients too")
    )
    debugpy: Annotated[DebugAddress, Cli("--debugpy", metavar="[HOST:]PORT", bare="true")] = Field(
        "",
        description="listen for a debugger (debugpy, the debug extra) on [HOST:]PORT for the "
        f"whole run, across reloads; true or a bare flag means {DEFAULT_HOST}:{DEFAULT_PORT}",
    )
    debugpy_wait: Annotated[Bool, Cli("--debugpy-wait", switch="on")] = Field(
        False, description="hold the first request until a debugger attaches (with debugpy)"
    )
    # The project around the server: `cserver init` writes these into the stack and
    # `cserver dev` runs them locally. No runcserver flag: the server never reads them.
    side_processes: Annotated[SideProcesses, Cli(NO_FLAG)] = Field(
        default_factory=dict,
        description="processes run next to the server (workers, schedulers, asset watchers) "
        'by cserver dev and as stack services, as JSON: {"NAME": "COMMAND"} or {"NAME": '
        '{"command": ..., "reload": true, "needs": ["db", "redis"], "image": "app" or "node", '
        '"healthcheck": COMMAND, "output": DIR}}; they join the detected ones and replace one '
        "of the same name",
    )
    bootstrap: Annotated[str | None, Cli(NO_FLAG)] = Field(
        None,
        description="command run once after migrate, e.g. python manage.py loaddata initial "
        "(the stack runs it again only after its database volume is deleted)",
    )

    @field_validator("processes")
    @classmethod
    def _processes_fit_mode(cls, count: int, info: Any) -> int:
        if count > 1 and info.data.get("mode") == "fork":
            message = processes_problem(f"--processes {count}", "--mode fork")
            raise PydanticCustomError("processes_mode", message, {"count": count})
        return count

    @field_validator("delay_max_ms")
    @classmethod
    def _delay_range(cls, high: int, info: Any) -> int:
        # A field validator, not a model one, so that it runs, and is reported, even when
        # other fields are wrong; delay_min_ms is absent from info.data when it was wrong.
        low = info.data.get("delay_min_ms")
        if low is not None and low > high:
            message = delay_range_problem(low, "delay_min_ms", high, "delay_max_ms")
            raise PydanticCustomError("delay_range", message, {"low": low, "high": high})
        return high

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """One source that applies cserver's precedence (sources.gather)."""
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        return (_GatheredSource(settings_cls, init_kwargs),)


def validate_gathered(values: Mapping[str, Any]) -> ServerConfig:
    """The config for values already gathered from every source (ValidationError if bad)."""
    token = _GATHERED.set(values)
    try:
        return ServerConfig()
    finally:
        _GATHERED.reset(token)
