"""What every command shares: settings, exit codes, running async work, reaching NATS, checks.

Exit codes (documented in the README, tested in ``tests/test_cli_exits.py``):

====  =======================================================================
0     done; the event was accepted
1     the hub rejected the event, or a check found a problem
2     usage or configuration: a wrong argument, file, setting or registry
3     unavailable: NATS, the hub or the ledger database did not answer
====  =======================================================================
"""

from __future__ import annotations

import asyncio
import difflib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import date
from enum import IntEnum
from typing import Annotated, NoReturn, TypeVar

import nats.errors
import nats.js.errors
import typer
from nats.aio.client import Client
from sqlalchemy.exc import DBAPIError

from hub.config import HubSettings
from hub.errors import (
    ConfigError,
    EventRejected,
    HubError,
    HubUnavailable,
    LedgerVersionError,
    NatsServerError,
    NotAuthorized,
    ReaderConflict,
    RegistryError,
)
from hub.identity.sessions import connect_as
from hub.registry import Registry, load_registry
from hub.workdays import UnknownYear
from schemas.envelope import CATEGORIES

T = TypeVar("T")
CLI_ATTEMPTS = 5  # one-shot commands give up on an unreachable server after this many tries
OrgOption = Annotated[str, typer.Option("--as", help="以哪个单位的身份（登记簿中的 id）")]


class Exit(IntEnum):
    """What a script can learn from the exit code."""

    OK = 0
    REJECTED = 1  # the hub refused the event, or a check found a problem
    USAGE = 2  # a wrong argument, file, setting or registry
    UNAVAILABLE = 3  # NATS, the hub or the ledger database did not answer


def fail(message: str, code: Exit = Exit.USAGE) -> NoReturn:
    """Print ``错误：message`` and leave with ``code``."""
    typer.echo(f"错误：{message}", err=True)
    raise typer.Exit(code)


def settings_of(ctx: typer.Context) -> HubSettings:
    """The settings read once by the root command."""
    settings: HubSettings = ctx.obj
    return settings


def run(work: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``work`` with a stop event that SIGINT and SIGTERM set (errors reach ``main``)."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await work(stop)

    return asyncio.run(runner())


def judged(exc: BaseException) -> tuple[Exit, str] | None:
    """The exit code and message of an error a user can cause; ``None`` for a bug."""
    if isinstance(exc, BaseExceptionGroup):
        verdicts = [judged(leaf) for leaf in _leaves(exc)]
        if not verdicts or any(v is None for v in verdicts):
            return None
        return max((v for v in verdicts if v is not None), key=lambda v: v[0])
    for kinds, code in _CODES:
        if isinstance(exc, kinds):
            return code, _message(exc)
    return None


_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Exit], ...] = (
    (EventRejected, Exit.REJECTED),
    (
        (
            ConfigError,
            RegistryError,
            LedgerVersionError,
            ReaderConflict,
            NotAuthorized,
            UnknownYear,
        ),
        Exit.USAGE,
    ),
    ((FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError), Exit.USAGE),
    ((HubUnavailable, NatsServerError), Exit.UNAVAILABLE),
    ((nats.errors.Error, DBAPIError, TimeoutError, OSError), Exit.UNAVAILABLE),
    (HubError, Exit.USAGE),
)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _message(exc: BaseException) -> str:
    if isinstance(exc, HubError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"文件 {exc.filename}：{exc.strerror}"
    if isinstance(exc, nats.js.errors.NotFoundError):
        return (
            "NATS 服务器上没有枢纽的流或消费者："
            "枢纽没有在这台服务器上运行，或 HUB_SUBJECT_ROOT 不同"
        )
    if isinstance(exc, nats.errors.Error | TimeoutError):
        return f"NATS 没有应答（{type(exc).__name__}{f': {exc}' if str(exc) else ''}）"
    if isinstance(exc, DBAPIError):
        return f"台账数据库出错（{type(exc.orig).__name__}: {exc.orig}）"
    return f"系统错误（{type(exc).__name__}: {exc}）"


def reach(settings: HubSettings) -> HubSettings:
    """The settings with the NATS URL: HUB_NATS_URL, else the one a running ``hub up`` wrote."""
    if settings.nats_url:
        return settings
    try:
        url = settings.url_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        fail(
            f"没有设置 HUB_NATS_URL，也没有运行中的 hub up（{settings.url_file} 不存在）",
            Exit.UNAVAILABLE,
        )
    return settings.model_copy(update={"nats_url": url})


@asynccontextmanager
async def nats_session(
    settings: HubSettings, identity: str, *, label: str, long_running: bool = False
) -> AsyncIterator[Client]:
    """A NATS connection as ``identity`` for the length of a command (closed at the end).

    Every command gives up when no server answers at start; a long-running one (a dashboard)
    then reconnects for as long as it runs.
    """
    nc = await connect_as(
        settings,
        identity,
        label=label,
        attempts=CLI_ATTEMPTS,
        reconnect_attempts=-1 if long_running else None,
    )
    try:
        yield nc
    finally:
        await nc.close()


def registry_of(settings: HubSettings) -> Registry:
    """The registry the settings name."""
    try:
        return load_registry(settings.registry)
    except RegistryError as exc:
        fail(f"登记簿不可用：{exc}")


def known_org(registry: Registry, org: str) -> str:
    """``org`` when the registry has it; exit 2 naming the closest ids otherwise."""
    if org in registry:
        return org
    close = difflib.get_close_matches(org, [o.id for o in registry.organisations], n=3)
    hint = f"；是不是 {'、'.join(close)}？" if close else ""
    fail(f"{org} 不在组织登记簿中{hint}（hub registry list 列出全部单位）")


def known_county(registry: Registry, county: str | None) -> str | None:
    """``county`` when ``None`` or in the registry; exit 2 listing the counties otherwise."""
    if county is None or county in {c.id for c in registry.counties}:
        return county
    choices = "、".join(f"{c.id}（{c.name}）" for c in registry.counties)
    fail(f"没有县（市、区）{county}；可选：{choices}")


def known_category(category: str | None) -> str | None:
    """``category`` when ``None`` or an Article 15 category; exit 2 listing them otherwise."""
    if category is None or category in CATEGORIES:
        return category
    choices = "、".join(f"{c.name}（{c.short}）" for c in CATEGORIES.values())
    fail(f"没有信息类别 {category}；可选：{choices}")


def period(day_from: date, day_to: date) -> tuple[date, date]:
    """A period of days in order; exit 2 when it runs backwards."""
    if day_from > day_to:
        fail(f"--from {day_from.isoformat()} 晚于 --to {day_to.isoformat()}")
    return day_from, day_to
