"""Fill ``.cache/taesd`` with madebyollin's tiny VAEs from the Hugging Face hub, for the tests that need real ones.

``./run.sh test`` runs this before pytest. It does nothing when a TAESD folder is already there
(``$INTERPOSER_TAESD_DIR``, ``../shared/vae/taesd``, or this cache with every file), and gives up after one quick
attempt when the hub cannot be reached (one line; those tests then skip, see ``tests/conftest.py``). Files are
written complete or not at all (``huggingface_hub`` downloads to a temporary name first).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from interposer import hub  # noqa: E402
from interposer.taesd import PARTS, TAESD_NAMES  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from data_paths import TAESD_CACHE as CACHE  # noqa: E402
from data_paths import taesd_dir  # noqa: E402


def main() -> int:
    found = taesd_dir()
    if found is not None and found != CACHE:
        return 0
    wanted = [(name, part) for name in TAESD_NAMES.values() for part in PARTS]
    missing = [(name, part) for name, part in wanted if not (CACHE / f"{name}_{part}.safetensors").is_file()]
    if not missing:
        return 0
    got = []
    for name, part in missing:
        try:
            hub.download(hub.HubFile(f"madebyollin/{name}", f"{name}_{part}.safetensors"), local_dir=CACHE)
            got.append(f"{name}_{part}")
        except hub.HubEntryMissingError:
            continue  # that repository keeps another layout: the tests that need it skip
        except hub.HubUnreachableError as exc:
            print(f"TAESD files for the tests not fetched ({exc}); the tests that need them will skip.")
            return 0
    if got:
        print(f"Fetched {len(got)} TAESD files into {CACHE}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
