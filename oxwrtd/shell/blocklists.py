"""The blocklist refresher: fetch each `[[blocklists]]` URL on its schedule, install the sets.

One pass (`step`) fetches every list that is due (off the event loop, 30 s timeout, 64 MiB cap),
parses it, compiles all lists into the `inet oxwrt-blocklist` table and installs it in one nft
transaction through `nft_apply`. A failed fetch keeps the list's last good entries (fail closed;
the reference installs an empty set) and retries with backoff; a list never fetched is empty and
its error is reported by `status()`. Removing every list deletes the table. `run` loops `step`
at the next deadline, or as soon as `wake()` says the config changed.
Only http, https and file URLs are fetched; a redirect may lead to http or https only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import msgspec

from oxwrtd.core import blocklist_parse as bp
from oxwrtd.core.firewall import zone_interfaces
from oxwrtd.core.fw_blocklist import compile_blocklists
from oxwrtd.core.fw_script import Ruleset
from oxwrtd.shell.nft import NftApplyError
from schema.config import Blocklist, Config

log = logging.getLogger("oxwrtd")

FETCH_TIMEOUT_SECONDS: Final = 30.0  # the reference's HTTP timeout
MAX_BODY_BYTES: Final = 64 * 1024 * 1024  # ~4 M lines of `a.b.c.d/nn`: four times MAX_ENTRIES
APPLY_RETRY_SECONDS: Final = 30.0  # nft refused the table: try again after this long
USER_AGENT: Final = "oxwrt-blocklist/1"
_CHUNK: Final = 64 * 1024


class FetchError(Exception):
    """A list could not be downloaded; the message names the URL and the cause."""


Fetch = Callable[[str, float], bytes]


# ---------------------------------------------------------------- fetching


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp too; a list may only move to another http(s) URL."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(f"{req.full_url}: refusing a redirect to {newurl!r} (not http/https)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


# proxies from the environment are not used: the router fetches directly
_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}), _HttpOnlyRedirects)


def http_fetch(url: str, timeout: float, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body at `url` (http, https or a local file://), at most `max_bytes`. Each read waits
    at most `timeout`, and the whole download is abandoned once `timeout` has passed."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _read_file(url, parts, max_bytes)
    if scheme not in ("http", "https"):
        raise FetchError(f"{url}: only http, https and file URLs are fetched")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url}: body of {int(declared):,} bytes exceeds {max_bytes:,}")
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read1(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url}: body exceeds {max_bytes:,} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url}: download took longer than {timeout:g} s")
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"{url}: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{url}: {exc or type(exc).__name__}") from None


def _read_file(url: str, parts: urllib.parse.SplitResult, max_bytes: int) -> bytes:
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: a file URL must name a local path (file:///path)")
    path = Path(urllib.parse.unquote(parts.path))
    try:
        with path.open("rb") as f:
            body = f.read(max_bytes + 1)
    except OSError as exc:
        raise FetchError(f"{url}: {exc.strerror or exc}") from None
    if len(body) > max_bytes:
        raise FetchError(f"{url}: file exceeds {max_bytes:,} bytes")
    return body


# ---------------------------------------------------------------- the refresher


class BlocklistRefresher:
    """Keeps `inet oxwrt-blocklist` in step with the config's lists and their downloads.

    `nft_apply(ruleset)` installs a ruleset (e.g. `Nft.apply`); it runs on `apply_executor`
    (give the daemon's kernel thread: libnftables is not shared across threads), downloads and
    parsing on `executor` (None: asyncio's default pool)."""

    def __init__(
        self,
        nft_apply: Callable[[Ruleset], object],
        fetch: Fetch = http_fetch,
        clock: Callable[[], float] = time.time,
        *,
        executor: concurrent.futures.Executor | None = None,
        apply_executor: concurrent.futures.Executor | None = None,
        timeout: float = FETCH_TIMEOUT_SECONDS,
    ) -> None:
        self._nft_apply = nft_apply
        self._fetch = fetch
        self._clock = clock
        self._executor = executor
        self._apply_executor = apply_executor
        self._timeout = timeout
        self._lists: dict[str, bp.ListStatus] = {}
        self._entries: dict[str, tuple[str, ...]] = {}
        self._generation = 0  # bumped whenever any list's entries change
        self._compiled: tuple[bytes, Ruleset] | None = None
        self._applied_digest: str | None = None
        self._apply_retry_at: float | None = None
        self.apply_error: str | None = None  # nft's refusal of the last attempt, if it failed
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ reading

    def status(self) -> list[bp.ListStatus]:
        """Per configured list, in config order: entries installed, fetch times, last error."""
        return list(self._lists.values())

    def entries(self, name: str) -> tuple[str, ...]:
        """The prefixes currently compiled for list `name` (empty if never fetched)."""
        return self._entries.get(name, ())

    # ------------------------------------------------------------ driving

    def wake(self) -> None:
        """The config changed: run a pass now. Safe from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, get_config: Callable[[], Config | None]) -> None:
        """Forever: a pass, then sleep until the next list is due or `wake()`."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            deadline = await self.step(get_config())
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def step(self, config: Config | None) -> float | None:
        """One pass: follow `config`'s lists, fetch those due, install the table if it changed
        or anything was fetched. Returns when the next pass is due (None: only on `wake`).
        With no config (nothing running yet) the kernel is left alone."""
        if config is None:
            return None
        self._follow(config.blocklists)
        now = self._clock()
        due = [s for s in self._lists.values() if bp.is_due(s, now)]
        if due:
            await asyncio.gather(*(self._refresh(s) for s in due))
        await self._install(config, fetched=bool(due))
        deadlines = (bp.next_deadline(self._lists.values()), self._apply_retry_at)
        return min((d for d in deadlines if d is not None), default=None)

    def _follow(self, configured: Sequence[Blocklist]) -> None:
        now = self._clock()
        lists: dict[str, bp.ListStatus] = {}
        for bl in configured:
            name, url, refresh = bl.name, bl.url, bl.refresh_seconds
            old = self._lists.get(name)
            if old is None or old.url != url:  # another source: its old entries do not apply
                if self._entries.pop(name, None) is not None:
                    self._generation += 1
                lists[name] = bp.new_list(name, url, refresh, now)
            else:
                lists[name] = bp.reconfigured(old, refresh, now)
        for gone in set(self._entries) - set(lists):
            del self._entries[gone]
            self._generation += 1
        self._lists = lists

    async def _refresh(self, status: bp.ListStatus) -> None:
        loop = asyncio.get_running_loop()
        try:
            parsed = await loop.run_in_executor(self._executor, self._download, status.url)
        except (FetchError, bp.BlocklistParseError, OSError, ValueError) as exc:
            error = str(exc) or type(exc).__name__
            updated = bp.failed(status, self._clock(), error)
            kept = len(self._entries.get(status.name, ()))
            log.warning(
                "blocklist %s: %s; keeping %d entries, retry in %.0f s",
                status.name,
                error,
                kept,
                updated.due - self._clock(),
            )
        else:
            updated = bp.succeeded(status, self._clock(), parsed)
            if parsed.entries != self._entries.get(status.name):
                self._entries[status.name] = parsed.entries
                self._generation += 1
            log.info("blocklist %s: %d entries", status.name, len(parsed.entries))
            if parsed.rejected.count:
                log.warning(
                    "blocklist %s: %d line(s) rejected, e.g. %s",
                    status.name,
                    parsed.rejected.count,
                    "; ".join(parsed.rejected.examples),
                )
        if self._lists.get(status.name) is status:  # not reconfigured meanwhile
            self._lists[status.name] = updated

    def _download(self, url: str) -> bp.Parsed:
        return bp.parse_body(self._fetch(url, self._timeout))

    async def _install(self, config: Config, *, fetched: bool) -> None:
        zones = _zones_used(config)
        key = _ENCODER.encode((config.blocklists, zones, self._generation))
        loop = asyncio.get_running_loop()
        if self._compiled is None or self._compiled[0] != key:
            entries = dict(self._entries)
            try:
                ruleset = await loop.run_in_executor(
                    self._executor, compile_blocklists, config, entries, zones
                )
            except ValueError as exc:
                self._failed_apply(f"compiling the blocklist table: {exc}")
                return
            self._compiled = (key, ruleset)
        ruleset = self._compiled[1]
        # after a fetch nft is asked even for the same digest: its cheap digest check then
        # repairs a table deleted behind our back; after a refusal `_applied_digest` is None
        if ruleset.digest == self._applied_digest and not fetched:
            return
        try:
            await loop.run_in_executor(self._apply_executor, self._nft_apply, ruleset)
        except NftApplyError as exc:
            self._failed_apply(str(exc))
            return
        self._applied_digest = ruleset.digest
        self._apply_retry_at = None
        self.apply_error = None

    def _failed_apply(self, error: str) -> None:
        self.apply_error = error
        self._applied_digest = None
        self._apply_retry_at = self._clock() + APPLY_RETRY_SECONDS
        log.error("blocklists: table not installed: %s", error)


def _zones_used(config: Config) -> Mapping[str, Sequence[str]]:
    wanted = {z for bl in config.blocklists for z in bl.zones}
    return {z: ifaces for z, ifaces in zone_interfaces(config).items() if z in wanted}


_ENCODER: Final = msgspec.msgpack.Encoder()

__all__ = [
    "FETCH_TIMEOUT_SECONDS",
    "MAX_BODY_BYTES",
    "BlocklistRefresher",
    "FetchError",
    "http_fetch",
]
