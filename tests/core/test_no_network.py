"""No network must never stall the webui: one quick attempt, no retries, failures remembered.

Two dead hubs on 127.0.0.1: one refuses connections, one accepts and never answers. Today's
``huggingface_hub`` alone spends ~48 s per lookup there (a 60 s metadata retry with backoff); these
tests bound the *mechanism* (one connection, a timeout set, the second lookup answered from memory),
not a speed: the time bound is far above one probe timeout and far below one retry cycle.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error

import pytest
from conftest import REPO
from hub_server import DeadEndpoint

from interposer import hub

HUB_URL = "https://huggingface.co/city96/SD-Latent-Interposer/resolve/main/v4.0/xl-to-v1_interposer-v4.0.safetensors"
TWO_LOOKUPS = textwrap.dedent(
    """
    import sys, time
    from interposer import direction, WeightsQuery
    from interposer.errors import InterposerError
    from interposer.weights import resolve_and_load
    for attempt in range(2):
        started = time.perf_counter()
        try:
            resolve_and_load(direction("xl-to-v1"), WeightsQuery(download_dir=sys.argv[1]))
        except InterposerError as exc:
            print(f"{time.perf_counter() - started:.2f}|{exc}")
    """
)


def run(args, endpoint, tmp_path, timeout=120):
    env = dict(os.environ)
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH=str(REPO), HF_HUB_OFFLINE="0")
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path)  # fmt: skip


@pytest.mark.parametrize("mode", ["refuse", "silent"])
def test_generation_lookups_fail_fast_once_and_then_from_memory(mode, tmp_path):
    folder = tmp_path / "models"
    with DeadEndpoint(mode) as dead:
        result = run(["-c", TWO_LOOKUPS, str(folder)], dead.endpoint, tmp_path)
        connections = dead.connections
    lines = [line for line in result.stdout.splitlines() if "|" in line]
    assert len(lines) == 2, result.stdout + result.stderr
    (first_s, first), (second_s, second) = (line.split("|", 1) for line in lines)
    assert float(first_s) < hub.PROBE_TIMEOUT_S + 10  # one probe, no 60 s retry cycle
    assert float(second_s) < 1.0  # remembered: a batch or an X/Y/Z grid does not ask again
    for message in (first, second):
        assert "xl-to-v1_interposer-v4.0.safetensors" in message and str(folder) in message
        assert f"{dead.endpoint}/city96/SD-Latent-Interposer/resolve/main/v4.0/" in message
        assert f"or {HUB_URL}" in message  # the mirror is down: huggingface.co is the other place to get it
        assert "HF_ENDPOINT" in message
        assert f"The mirror at {dead.endpoint} (HF_ENDPOINT) did not serve the file" in message  # set: no "set it"
        assert "If the hub is blocked" not in message and "restart" not in message  # nothing to restart here
    if mode == "silent":
        assert connections == 1  # no retries
    assert not folder.exists()  # a failed lookup leaves nothing behind
    assert result.stderr.count("Retrying") == 0


@pytest.mark.parametrize("mode", ["refuse", "silent"])
def test_cli_download_offline_says_url_and_folder(mode, tmp_path):
    folder = tmp_path / "w"
    with DeadEndpoint(mode) as dead:
        started = time.perf_counter()
        result = run(["-m", "interposer", "download", "xl-to-v1", "--dir", str(folder)], dead.endpoint, tmp_path)
        elapsed = time.perf_counter() - started
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: xl-to-v1:"), result.stderr
    assert "Traceback" not in result.stderr
    assert f"{dead.endpoint}/city96/SD-Latent-Interposer/resolve/main/v4.0/xl-to-v1" in errors[0]
    assert f"or {HUB_URL}" in errors[0]
    assert str(folder) in errors[0] and "HF_ENDPOINT" in errors[0]
    assert f"The mirror at {dead.endpoint} (HF_ENDPOINT) did not serve the file" in errors[0]
    assert errors[0].endswith("and run the command again.") and "restart" not in errors[0]
    assert elapsed < 40  # process start + one probe; huggingface_hub's own retries alone take ~48 s


def test_probe_failure_memory_expires(monkeypatch):
    hub.forget_failures()
    file = hub.HubFile("city96/SD-Latent-Interposer", "x.safetensors", "v4.0")
    with DeadEndpoint("silent") as dead:
        monkeypatch.setenv("HF_ENDPOINT", dead.endpoint)
        for _ in range(3):
            with pytest.raises(hub.HubUnreachableError, match=r"did not answer within 0\.5 s"):
                hub.probe(file, timeout=0.5)
        assert dead.connections == 1  # the next two were answered from memory
        monkeypatch.setattr(hub, "FAILURE_MEMORY_S", 0.0)
        with pytest.raises(hub.HubUnreachableError):
            hub.probe(file, timeout=0.5)
        time.sleep(0.3)
        assert dead.connections == 2  # the memory expired: asked once more
    hub.forget_failures()


def test_a_refused_connection_is_not_called_a_timeout(monkeypatch):
    hub.forget_failures()
    file = hub.HubFile("city96/SD-Latent-Interposer", "x.safetensors", "v4.0")
    with DeadEndpoint("refuse") as dead:
        monkeypatch.setenv("HF_ENDPOINT", dead.endpoint)
        with pytest.raises(hub.HubUnreachableError) as refused:
            hub.probe(file, timeout=0.5)
    assert str(refused.value) == f"the hub at {dead.endpoint} refused the connection"
    hub.forget_failures()
    with DeadEndpoint("silent") as dead:
        monkeypatch.setenv("HF_ENDPOINT", dead.endpoint)
        with pytest.raises(hub.HubUnreachableError) as silent:
            hub.probe(file, timeout=0.5)
    assert str(silent.value) == f"the hub at {dead.endpoint} did not answer within 0.5 s"
    hub.forget_failures()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (socket.gaierror(-2, "Name or service not known"), "could not be found (DNS lookup failed: Name or service "
                                                           "not known)"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "failed the TLS handshake"),
        (ConnectionResetError(104, "Connection reset by peer"), "dropped the connection"),
        (OSError(101, "Network is unreachable"), "could not be reached ([Errno 101] Network is unreachable)"),
    ],
)  # fmt: skip
def test_other_failures_name_their_reason(error, expected):
    """No live DNS or TLS here: the errors urllib raises for them, as it wraps them."""
    for raised in (urllib.error.URLError(error), error):  # wrapped while connecting, bare while reading
        reason = hub.failure_reason(raised, 4.0)
        assert reason.startswith(expected) and "did not answer" not in reason
