"""Talking to the Hugging Face hub without ever stalling the webui.

``huggingface_hub`` alone is built for patience: when no copy is cached and the hub does not
answer, ``hf_hub_download`` retries its metadata request with a 60-second timeout and backoff
(about 48 s with no route to the hub), at every webui start-up and again in every hires pass.
Users behind firewalls, in regions where the hub is blocked and on air-gapped machines get a
silent hang. So every download here goes:

1. ``HF_HUB_OFFLINE=1`` or downloads off: the hub cache only, read without side effects
   (:func:`cached`; no ``.cache`` folders appear anywhere);
2. a failure remembered from the last few minutes: fail at once with the same message;
3. one quick metadata request (:func:`probe`: short timeout, no retries); on a network error
   the failure is remembered and reported;
4. only then ``hf_hub_download`` (which writes to ``NAME.incomplete`` and renames when complete).

No torch here: ``install.py`` uses this module at start-up.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .advice import CLI, Advice
from .errors import InterposerError, require

# Seconds for the one metadata request (connect and read). A reachable hub answers in well under
# a second; a blackholed one costs this much, once per FAILURE_MEMORY_S.
PROBE_TIMEOUT_S = 4.0
# How long a failed request is remembered, so a batch or an X/Y/Z grid does not retry per pass.
FAILURE_MEMORY_S = 300.0
DEFAULT_ENDPOINT = "https://huggingface.co"
EXAMPLE_MIRROR = "https://hf-mirror.com"


class HubUnreachableError(InterposerError, ConnectionError):
    """The hub did not answer (no network, blocked, timed out)."""


class HubEntryMissingError(InterposerError, FileNotFoundError):
    """The hub answered that the repository, revision or file does not exist."""


@dataclass(frozen=True)
class HubFile:
    """One file in a hub repository: ``subfolder/filename`` in ``repo_id`` at ``revision``."""

    repo_id: str
    filename: str
    subfolder: str = ""
    revision: str = "main"

    @property
    def path_in_repo(self) -> str:
        return f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename

    @property
    def url(self) -> str:
        """Browser/download URL (for messages and manual downloads), on the configured endpoint."""
        return self.url_on(endpoint())

    def url_on(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.repo_id}/resolve/{self.revision}/{self.path_in_repo}"

    @property
    def urls(self) -> list[str]:
        """Where to download the file by hand: the configured endpoint's URL and, when that is a mirror,
        huggingface.co's too (the mirror may be the thing that is down)."""
        official = self.url_on(DEFAULT_ENDPOINT)
        return [official] if self.url == official else [self.url, official]

    @property
    def urls_text(self) -> str:
        """:attr:`urls` for a sentence: ``URL`` or ``MIRROR_URL or HUB_URL``."""
        return " or ".join(self.urls)


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def mirror_set() -> bool:
    """True when ``HF_ENDPOINT`` sends requests somewhere other than huggingface.co."""
    return endpoint() != DEFAULT_ENDPOINT


def mirror_hint(advice: Advice = CLI) -> str:
    """What to try when the hub did not answer, in the words of where the message is shown (``advice``).

    ``HF_ENDPOINT`` is read when a process starts: a command is simply run again, the webui must be
    restarted (and is configured in ``webui-user``). With a mirror already set, suggesting to set one
    would send the user in a circle: the mirror itself is what failed.
    """
    if mirror_set():
        return (
            f"The mirror at {endpoint()} (HF_ENDPOINT) did not serve the file: check that it is up, or point "
            f"HF_ENDPOINT at another mirror (or remove it to use huggingface.co) and {advice.again}."
        )
    return (
        f"If the hub is blocked where you are, set HF_ENDPOINT to a mirror{advice.env_where} "
        f"(e.g. HF_ENDPOINT={EXAMPLE_MIRROR}) and {advice.again}."
    )


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as ``huggingface_hub`` reads it (1, true, yes, on)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


_failures: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def _remembered_failure() -> str | None:
    with _lock:
        entry = _failures.get(endpoint())
        if entry is None:
            return None
        when, message = entry
        if time.monotonic() - when > FAILURE_MEMORY_S:
            del _failures[endpoint()]
            return None
        return message


def _remember_failure(message: str) -> None:
    with _lock:
        _failures[endpoint()] = (time.monotonic(), message)


def forget_failures() -> None:
    """Clear the memory of failed requests (tests; a user who just fixed the network can restart)."""
    with _lock:
        _failures.clear()


def cached(file: HubFile, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The hub cache's copy of ``file``, if there is one; touches nothing on disk or network."""
    hub = require("huggingface_hub", "huggingface-hub")
    found = hub.try_to_load_from_cache(
        file.repo_id, file.path_in_repo, cache_dir=str(cache_dir) if cache_dir else None, revision=file.revision
    )
    return Path(found) if isinstance(found, str) else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect (to the CDN) already says "the file is there"
        return None


def probe(file: HubFile, timeout: float = PROBE_TIMEOUT_S) -> None:
    """One HEAD request for ``file``, no retries: raise :class:`HubUnreachableError` or
    :class:`HubEntryMissingError`, or return when the hub has the file.

    Plain ``urllib`` (it honours the ``*_PROXY`` variables), not the hub client: ``huggingface_hub``'s
    first request in a process also fetches a registry of its own from the endpoint (3 s more when the
    hub is unreachable), which a failing probe does not need to pay for.
    """
    remembered = _remembered_failure()
    if remembered is not None:
        raise HubUnreachableError(remembered)
    request = urllib.request.Request(file.url, method="HEAD", headers={"User-Agent": "sd-webui-latent-interposer"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return
        if exc.code in (401, 403, 404):
            raise HubEntryMissingError(
                f"The hub has no {file.path_in_repo} in {file.repo_id} at revision {file.revision!r} "
                f"(HTTP {exc.code} from {endpoint()})."
            ) from exc
        message = f"the hub at {endpoint()} answered HTTP {exc.code} for {file.path_in_repo}"
        _remember_failure(message)
        raise HubUnreachableError(message) from exc
    except (OSError, ValueError) as exc:  # refused, timed out, DNS, TLS, a malformed HF_ENDPOINT
        message = f"the hub at {endpoint()} {failure_reason(exc, timeout)}"
        _remember_failure(message)
        raise HubUnreachableError(message) from exc


def failure_reason(exc: BaseException, timeout: float = PROBE_TIMEOUT_S) -> str:
    """What went wrong, in words that point at the fix: a refused connection (nothing listens there: a
    wrong address or a mirror that is down) is not a timeout (a firewall or a blocked hub drops the
    packets), and neither is a name that does not resolve or a failed TLS handshake."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc  # urllib wraps the socket's error
    if isinstance(reason, ConnectionRefusedError):
        return "refused the connection"
    if isinstance(reason, TimeoutError):
        return f"did not answer within {timeout:g} s"
    if isinstance(reason, socket.gaierror):
        return f"could not be found (DNS lookup failed: {reason.strerror or reason})"
    if isinstance(reason, ssl.SSLError):
        detail = getattr(reason, "verify_message", None) or getattr(reason, "reason", None) or reason
        return f"failed the TLS handshake ({detail})"
    if isinstance(reason, ConnectionResetError):
        return "dropped the connection"
    if isinstance(exc, ValueError):
        return f"is not a usable address ({exc}); check HF_ENDPOINT"
    return f"could not be reached ({reason})"


def download(
    file: HubFile,
    *,
    local_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> Path:
    """Download ``file`` (into ``local_dir``, else the hub cache) after a quick :func:`probe`.

    Raises :class:`HubUnreachableError` quickly when offline (``HF_HUB_OFFLINE`` or a failed probe).
    """
    if offline():
        raise HubUnreachableError("HF_HUB_OFFLINE is set")
    probe(file, timeout)
    hub = require("huggingface_hub", "huggingface-hub")
    try:
        path = hub.hf_hub_download(
            repo_id=file.repo_id,
            filename=file.filename,
            subfolder=file.subfolder or None,
            revision=file.revision,
            local_dir=str(local_dir) if local_dir else None,
            cache_dir=str(cache_dir) if cache_dir else None,
            etag_timeout=timeout,
        )
    except InterposerError:
        raise
    except Exception as exc:  # the transfer broke off after a good probe
        message = f"downloading {file.path_in_repo} from {endpoint()} failed ({type(exc).__name__}: {exc})"
        raise HubUnreachableError(message) from exc
    return Path(path)
