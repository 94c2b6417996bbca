"""Write the CamVid cross-sequence partition lists (protocol ``heldout_0006R0``).

CamVid's ``train.txt`` holds three sequences: 0001TP (62 images), 0006R0 (101) and 0016E5
(204); every ``val.txt`` image is from 0016E5. The protocol keeps the 101 training images of
0006R0 out of both the labeled and the unlabeled pools and scores every model on them as the
``heldout`` split, beside ``val``. The other 266 images are partitioned with
:func:`mgd_lightning.data.splits.heldout_partitions` (seed 0, nested: 1/8 = 33, 1/4 = 66,
1/2 = 133 labeled). The lists are committed under ``configs/camvid/splits/heldout_0006R0/``;
this script regenerates them, byte for byte, from the data root's ``train.txt``::

    python benchmarks/camvid_heldout_splits.py --data-root ../shared/data/camvid
    python benchmarks/camvid_heldout_splits.py --data-root ../shared/data/camvid --check
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mgd_lightning.data.splits import heldout_partitions, read_split_file

PROTOCOL = "heldout_0006R0"
HELDOUT_PREFIX = "0006R0_"
RATIOS = {"1-8": 1 / 8, "1-4": 1 / 4, "1-2": 1 / 2}
SEED = 0
OUT = Path(__file__).resolve().parents[1] / "configs" / "camvid" / "splits" / PROTOCOL


def split_files(train_names: list[str]) -> dict[str, str]:
    """Relative path -> text of every list of the protocol, from the ids of ``train.txt``."""
    heldout, partitions = heldout_partitions(train_names, HELDOUT_PREFIX, RATIOS, SEED)
    files = {"heldout.txt": "\n".join(heldout) + "\n"}
    for name, (labeled, unlabeled) in partitions.items():
        files[f"{name}/labeled.txt"] = "\n".join(labeled) + "\n"
        files[f"{name}/unlabeled.txt"] = "\n".join(unlabeled) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("MGD_CAMVID_ROOT"),
                        help="CamVid root holding train.txt (default: $MGD_CAMVID_ROOT)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true",
                        help="compare with the files under --out instead of writing them")
    options = parser.parse_args(argv)
    train = Path(options.data_root or "") / "train.txt"
    if not train.is_file():
        parser.error(f"--data-root {options.data_root!r} holds no train.txt")
    files = split_files([e.name for e in read_split_file(train)])
    differing = []
    for relative, text in files.items():
        path = options.out / relative
        if options.check:
            if not path.is_file() or path.read_text() != text:
                differing.append(os.fspath(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if differing:
        print(f"differ from the regenerated lists: {differing}", file=sys.stderr)
        return 1
    print(f"{'checked' if options.check else 'wrote'} {len(files)} lists in {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
