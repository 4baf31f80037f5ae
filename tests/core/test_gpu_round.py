"""bench/gpu_round.sh, the one prepared command for a session lent a GPU: what it asks of each tool, with a stand-in
Python that parses every `python -m training ...` line with the real CLI parser (and makes the run folders the
later stages look for) instead of running it. The real round needs CUDA; its CPU smoke run is in
docs/development.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
from conftest import REPO

SCRIPT = REPO / "bench" / "gpu_round.sh"
STANDIN = """\
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["ROUND_CALLS"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["-m", "training"]:
    sys.path.insert(0, os.environ["ROUND_REPO"])
    from training.cli import build_parser
    parsed = build_parser().parse_args(args[2:])  # exits 2 on an option the CLI does not have
    if args[2] == "train":
        (Path(parsed.out) / "checkpoints").mkdir(parents=True)
    if args[2] == "eval":
        Path(parsed.out).mkdir(parents=True)
        (Path(parsed.out) / "report.md").write_text("| **interposer − VAE bridge** | **-1.00** |\\n")
"""

pytestmark = pytest.mark.skipif(
    os.name == "nt" or not (shutil.which("bash") and shutil.which("timeout")), reason="needs bash and timeout"
)


def _round(tmp_path, data_root, **env):
    standin = tmp_path / "py"
    standin.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "standin.py"} "$@"\n')
    standin.chmod(0o755)
    (tmp_path / "standin.py").write_text(STANDIN)
    calls = tmp_path / "calls.jsonl"
    environ = {**os.environ, "PY": str(standin), "WORK": str(tmp_path / "work"), "ROUND_CALLS": str(calls),
               "ROUND_REPO": str(REPO), **env}  # fmt: skip
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), str(data_root)], env=environ,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return done, lines


def test_the_round_trains_evaluates_and_exports_each_held_back_direction(tmp_path):
    root = tmp_path / "data-root"
    for folder in ("data/photos", "data/more", "vae/taesd"):
        (root / folder).mkdir(parents=True)
    done, calls = _round(tmp_path, root)
    assert done.returncode == 0, done.stdout + done.stderr
    tools = [c[1] if c[0] == "-m" else c[0] for c in calls]
    assert tools[:3] == ["-", "bench/bench_conversion.py", "bench/bench_upscale.py"]
    assert all("--device" in c and c[c.index("--device") + 1] == "cuda" for c in calls[1:3])
    encode = calls[3]
    families = encode[encode.index("--families") + 1 : encode.index("--crop")]
    assert encode[2] == "encode" and families == ["f2", "v1", "xl"]
    assert {"--rgb", "--no-download"} <= set(encode) and encode[encode.index("--holdout") + 1] == "7"
    trains = sorted(c for c in calls if c[2:3] == ["train"])
    assert [(c[c.index("--src") + 1], c[c.index("--dst") + 1]) for c in trains] == [
        ("f2", "xl"), ("v1", "f2"), ("xl", "f2")]  # fmt: skip
    assert all(c[c.index("--preset") + 1] == "gpu" and c[c.index("--minutes") + 1] == "3.5" for c in trains)
    exports = [c for c in calls if c[2:3] == ["export"]]
    assert len(exports) == 3 and all({"--half", "--card"} <= set(c) and "gpu" in c for c in exports)
    assert "interposer − VAE bridge" in done.stdout
    with tarfile.open(tmp_path / "out" / "round.tar.gz") as packed:
        names = packed.getnames()
    assert "logs/encode.log" in names and "eval/v1-to-f2/report.md" in names


def test_a_missing_data_folder_is_one_line_and_nothing_runs(tmp_path):
    done, calls = _round(tmp_path, tmp_path / "nowhere")
    assert done.returncode == 2 and calls == []
    assert (
        done.stdout.strip() == f"gpu_round: no folder {tmp_path / 'nowhere'}/data/photos (DATA_ROOT must hold "
        "data/photos, data/more, vae/taesd)"
    )
