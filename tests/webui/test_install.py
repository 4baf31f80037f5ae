"""install.py as the webui runs it: a child process with the webui root on PYTHONPATH."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import types

import pytest
from conftest import FIXTURES, REPO, UPSCALER_FIXTURES
from hub_server import DeadEndpoint, FakeHub

WEBUI = REPO / "tests" / "standins" / "a1111"
GOOD = (FIXTURES / "xl-to-v1_random.safetensors").read_bytes()
NAMES = ("xl-to-v1_interposer-v4.0.safetensors", "v1-to-xl_interposer-v4.0.safetensors")
UPSCALERS = [f"latent-upscaler-v2.1_SD{s}-x{f}.safetensors" for s in ("v1", "xl") for f in ("1.25", "1.5", "2.0")]
UPSCALER_BYTES = UPSCALER_FIXTURES / "latent-upscaler-v2.1_SDxl-x2.0_random.safetensors"
RUN = (
    "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
    "print('TORCH' if 'torch' in sys.modules else '')"
)


def run_install(tmp_path, hub=None, offline=True, commandline_args="", webui=WEBUI):
    env = dict(os.environ)
    env.update(
        # the Neo stand-in's files run the A1111 stand-in's through tests/standin_reuse.py
        PYTHONPATH=os.pathsep.join([str(webui), str(REPO / "tests")]), WEBUI_STUB_DATA=str(tmp_path),
        WEBUI_STUB_MODELS=str(tmp_path / "models"),
        WEBUI_STUB_PIP_LOG=str(tmp_path / "pip.log"), HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="1" if offline else "0", COMMANDLINE_ARGS=commandline_args,
    )  # fmt: skip
    if hub is not None:
        env["HF_ENDPOINT"] = hub.endpoint
    return subprocess.run([sys.executable, "-c", RUN, str(REPO / "install.py")], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)  # fmt: skip


def test_offline_first_start_prints_one_paragraph_and_starts(tmp_path):
    result = run_install(tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("Latent Interposer:") == 1
    folder = tmp_path / "models" / "LatentInterposer"
    assert str(folder) in out and NAMES[0] in out and NAMES[1] in out
    assert "https://huggingface.co/city96/SD-Latent-Interposer/resolve/main/v4.0/" in out
    assert "TORCH" not in out  # start-up stays light
    assert not (tmp_path / "pip.log").exists()  # both requirements are installed here


def test_forge_neo_launcher_runs_it_with_weights_under_neos_models_folder(tmp_path):
    """Neo's launcher runs install.py the same way (webui root on PYTHONPATH, ``launch`` importable) and keeps
    models under ``paths.models_path``: the weights go to <models>/LatentInterposer, and offline it is one quick
    paragraph as on A1111."""
    flux = ("fx-to-xl_interposer-v4.0.safetensors", "fx-to-v1_interposer-v4.0.safetensors")  # Neo loads FLUX.1 models
    fx_bytes = (FIXTURES / "fx-to-v1_random.safetensors").read_bytes()
    with FakeHub() as hub:
        for name in NAMES:
            hub.files[f"city96/SD-Latent-Interposer/v4.0/{name}"] = GOOD
        for name in flux:
            hub.files[f"city96/SD-Latent-Interposer/v4.0/{name}"] = fx_bytes
        for name in UPSCALERS:
            hub.files[f"city96/SD-Latent-Upscaler/{name}"] = UPSCALER_BYTES.read_bytes()
        result = run_install(tmp_path, hub, offline=False, webui=REPO / "tests" / "standins" / "neo")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models" / "LatentInterposer"
    assert all((folder / name).is_file() for name in UPSCALERS)
    assert all((folder / name).is_file() or (folder / "v4.0" / name).is_file() for name in (*NAMES, *flux))
    (tmp_path / "offline").mkdir()
    offline = run_install(tmp_path / "offline", webui=REPO / "tests" / "standins" / "neo")
    assert offline.returncode == 0 and offline.stdout.count("Latent Interposer:") == 1


def test_online_prefetch_then_silent(tmp_path):
    with FakeHub() as hub:
        for name in NAMES:
            hub.files[f"city96/SD-Latent-Interposer/v4.0/{name}"] = GOOD
        for name in UPSCALERS:
            hub.files[f"city96/SD-Latent-Upscaler/{name}"] = UPSCALER_BYTES.read_bytes()
        first = run_install(tmp_path, hub, offline=False)
        assert first.returncode == 0, first.stderr
        for name in NAMES:
            assert (tmp_path / "models" / "LatentInterposer" / "v4.0" / name).read_bytes() == GOOD
        for name in UPSCALERS:
            assert (tmp_path / "models" / "LatentInterposer" / name).is_file()
        assert first.stdout.count("downloaded") == 2 + len(UPSCALERS)
        before = sum(hub.requests.values())
        second = run_install(tmp_path, hub, offline=False)
        assert second.stdout.strip() == "" and second.stderr.strip() == ""
        assert sum(hub.requests.values()) == before  # nothing to do: no request at all


@pytest.mark.parametrize("mode", ["refuse", "silent"])
def test_unreachable_hub_costs_one_quick_attempt_and_one_paragraph(mode, tmp_path):
    """No route to the hub (HF_HUB_OFFLINE unset): one probe with a short timeout, then the webui starts.
    huggingface_hub's own retries took ~48 s here at every start-up; the bound tests that they are gone."""
    import time

    with DeadEndpoint(mode) as dead:
        started = time.perf_counter()
        result = run_install(tmp_path, dead, offline=False)
        elapsed = time.perf_counter() - started
        connections = dead.connections
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Latent Interposer:") == 1
    assert "HF_ENDPOINT" in result.stdout and "did not serve the file" in result.stdout
    assert f"The mirror at {dead.endpoint} (HF_ENDPOINT) did not serve the file" in result.stdout  # set: no "set it"
    assert "If the hub is blocked" not in result.stdout
    assert "and restart the webui." in result.stdout and "run the command again" not in result.stdout
    assert "enable downloads" not in result.stdout  # downloads are on: that advice would not apply
    assert f"{dead.endpoint}/city96/SD-Latent-Upscaler/resolve/main/" in result.stdout
    official = "or from huggingface.co: https://huggingface.co/city96/SD-Latent-Interposer/resolve/main/v4.0/"
    assert official in result.stdout  # the mirror is down: huggingface.co is the other place to get them
    assert "https://huggingface.co/city96/SD-Latent-Upscaler/resolve/main/latent-upscaler-v2.1_SD" in result.stdout
    assert connections <= 1  # one attempt for all ten files
    assert elapsed < 30, elapsed
    assert not (tmp_path / "models" / "LatentInterposer").exists() or not any(
        (tmp_path / "models" / "LatentInterposer").rglob("*.safetensors")
    )


def test_corrupt_prefetch_is_renamed(tmp_path):
    with FakeHub() as hub:
        for name in NAMES:
            hub.files[f"city96/SD-Latent-Interposer/v4.0/{name}"] = b"<html>rate limited</html>" * 10
        result = run_install(tmp_path, hub, offline=False)
    folder = tmp_path / "models" / "LatentInterposer" / "v4.0"
    assert result.returncode == 0
    assert not (folder / NAMES[0]).exists() and (folder / (NAMES[0] + ".corrupt")).exists()
    assert "The file was renamed to" in result.stdout


def test_skip_install_does_nothing(tmp_path):
    with FakeHub() as hub:
        result = run_install(tmp_path, hub, offline=False, commandline_args="--skip-install")
        assert not hub.requests
    assert result.stdout.strip() == "" and not (tmp_path / "models").exists()


def test_weights_folder_and_download_switch_come_from_the_saved_settings(tmp_path):
    custom = tmp_path / "my weights"
    (tmp_path / "config.json").write_text(json.dumps({"latent_interposer_weights_dir": str(custom)}))
    assert str(custom) in run_install(tmp_path).stdout
    (tmp_path / "config.json").write_text(json.dumps({"latent_interposer_allow_download": False}))
    assert run_install(tmp_path).stdout.strip() == ""


def test_missing_requirements_are_installed_with_the_webuis_pip(tmp_path, monkeypatch, capsys):
    calls = []
    fake_launch = types.SimpleNamespace(
        args=types.SimpleNamespace(skip_install=False),
        is_installed=lambda name: name != "safetensors",
        run_pip=lambda command, desc=None, live=False: calls.append((command, desc)),
    )
    monkeypatch.setitem(sys.modules, "launch", fake_launch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("sys.path", [str(WEBUI), *sys.path])
    monkeypatch.setenv("WEBUI_STUB_MODELS", str(tmp_path / "models"))
    monkeypatch.delitem(sys.modules, "modules.paths_internal", raising=False)
    runpy.run_path(str(REPO / "install.py"), run_name="__main__")
    assert calls == [('install "safetensors>=0.4"', "safetensors>=0.4 for Latent Interposer")]


def test_a_failing_pip_does_not_stop_the_webui(tmp_path, monkeypatch, capsys):
    def failing_pip(command, desc=None, live=False):
        raise RuntimeError("Couldn't install safetensors")

    fake_launch = types.SimpleNamespace(args=types.SimpleNamespace(skip_install=False),
                                        is_installed=lambda name: False, run_pip=failing_pip)  # fmt: skip
    monkeypatch.setitem(sys.modules, "launch", fake_launch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("sys.path", [str(WEBUI), *sys.path])
    runpy.run_path(str(REPO / "install.py"), run_name="__main__")
    assert "could not install its requirements" in capsys.readouterr().out


@pytest.fixture
def broken_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "interposer.webui", None)  # "import interposer.webui" now fails


def test_script_loads_and_explains_when_its_package_is_broken(broken_package, monkeypatch):
    monkeypatch.setattr("sys.path", [str(WEBUI), *sys.path])
    from modules import script_loading

    module = script_loading.load_module(str(REPO / "scripts" / "latent_interposer.py"))
    assert "could not load its package" in module.IMPORT_ERROR
    script = module.LatentInterposerScript()
    import gradio

    before = len(gradio._created)
    script.ui(False)
    html = [c for c in gradio._created[before:] if isinstance(c, gradio.HTML)]
    assert html and "could not load its package" in html[0].value
    with pytest.raises(RuntimeError, match="could not load its package"):
        script.run(object(), True)
