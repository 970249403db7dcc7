"""Build the bundled demo set src/selectivity/data/demo/cifar10-demo.zip from the CIFAR-10 JPEG zip.

    python tools/make_demo_data.py [--source ../shared/data/cifar10-jpeg.zip] [--out ...]

Picks, per class, 500 training and 100 test images at random with a fixed seed
(numpy default_rng(seed), choice without replacement, then sorted by file name) and copies
their JPEG bytes unchanged (no re-encoding, ``ZIP_STORED``) into an ImageFolder zip
``train/<class>/NNNN.jpg`` and ``test/<class>/NNNN.jpg``; the file names are the source's,
so every image can be traced back. Entries are written in sorted order with a fixed
timestamp, so the same source and seed give a byte-identical zip. Prints its size and sha256.

Provenance: CIFAR-10 (Krizhevsky, 2009), re-encoded as JPEG at quality 75 (see
../shared/data/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip"
DEFAULT_OUT = ROOT / "src" / "selectivity" / "data" / "demo" / "cifar10-demo.zip"
MAX_BYTES = 8 * 1024 * 1024
DATE = (2020, 1, 1, 0, 0, 0)


def pick(names: list[str], per_class: dict[str, int], seed: int) -> list[tuple[str, str]]:
    """(source member, demo member) pairs: ``per_class[split]`` names per (split, class)."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in names:
        parts = name.split("/")
        if len(parts) == 4 and parts[1] in per_class and parts[3].endswith(".jpg"):
            groups[(parts[1], parts[2])].append(name)
    if not groups:
        raise SystemExit("no <top>/{train,test}/<class>/<image>.jpg members found in the source zip")
    rng = np.random.default_rng(seed)
    chosen = []
    for (split, cls) in sorted(groups):
        members = sorted(groups[(split, cls)])
        k = per_class[split]
        if len(members) < k:
            raise SystemExit(f"{split}/{cls} has {len(members)} images, fewer than {k}")
        for i in sorted(rng.choice(len(members), size=k, replace=False)):
            member = members[i]
            chosen.append((member, f"{split}/{cls}/{member.rsplit('/', 1)[1]}"))
    return sorted(chosen, key=lambda pair: pair[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--train-per-class", type=int, default=500)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    with zipfile.ZipFile(args.source) as src:
        chosen = pick(src.namelist(), {"train": args.train_per_class, "test": args.test_per_class}, args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".zip.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as out:
            for member, name in chosen:
                info = zipfile.ZipInfo(name, date_time=DATE)
                info.external_attr = 0o644 << 16
                out.writestr(info, src.read(member), compress_type=zipfile.ZIP_STORED)
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise SystemExit(f"demo zip would be {size} bytes, over the {MAX_BYTES} byte limit")
    tmp.replace(args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    counts = defaultdict(int)
    for _, name in chosen:
        counts[name.split("/")[0]] += 1
    print(f"wrote {args.out}: {dict(counts)} images, {size} bytes ({size / 2**20:.2f} MiB), sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
