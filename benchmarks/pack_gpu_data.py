"""Pack the CIFAR-10 JPEGs that benchmarks/gpu.sh trains on into one zip small enough to travel.

The device machine receives the working tree and at most 64 MiB in all (the tree is about
7.5 MiB); ``../shared`` does not travel and the whole CIFAR-10 JPEG zip (60 MiB) is too big
beside the tree. This copies the JPEG files (not decoded arrays) of the full train split
(50,000 images) and of the first ``--test-per-class`` test images of each class (default 500:
5,000 images) into one deflated imagefolder zip with short member names
(``train/<class>/<n>.jpg``, ``test/...``; 45 MiB, 52 MiB with the tree) under
``.cache/gpu-data/``, which ``.gitignore`` already ignores. They are decoded there, on its 16
cores, into the cache.

Usage (here, before a device run):
  python3 benchmarks/pack_gpu_data.py [--source ../shared/data/cifar10-jpeg.zip]
                                      [--out .cache/gpu-data/cifar10-gpu.zip]
then run with ``carry: [".cache/gpu-data"]`` and ``benchmarks/gpu.sh`` (it looks there by default).
Standard library only; prints what it wrote and what will travel.
"""

from __future__ import annotations

import argparse
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MIB = 64


def pack(source: Path, out: Path, train_per_class: int | None, test_per_class: int | None) -> Counter:
    kept: Counter = Counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    # Deflate and short names: with 55,000 members, headers and names are megabytes of the budget.
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                                                         compresslevel=9) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")  # cifar10/<split>/<class>/<image>.jpg
            if info.is_dir() or len(parts) < 4 or not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            split, label = parts[-3], parts[-2]
            limit = train_per_class if split == "train" else test_per_class
            if limit is not None and kept[split, label] >= limit:
                continue
            kept[split, label] += 1
            name = f"{split}/{label}/{int(Path(parts[-1]).stem)}{Path(parts[-1]).suffix}"  # 0042.jpg -> 42.jpg
            dst.writestr(zipfile.ZipInfo(name, info.date_time), src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(out)
    return kept


def tree_mib() -> float:
    """Size of what travels besides the data: tracked and untracked-not-ignored files."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    candidates = [ROOT.parent / "shared/data/cifar10-jpeg.zip", Path("/work/shared/data/cifar10-jpeg.zip")]
    parser.add_argument("--source", type=Path, default=next((c for c in candidates if c.exists()), candidates[0]))
    parser.add_argument("--out", type=Path, default=ROOT / ".cache/gpu-data/cifar10-gpu.zip")
    parser.add_argument("--train-per-class", type=int, default=None, help="default: all 5,000")
    parser.add_argument("--test-per-class", type=int, default=500)
    args = parser.parse_args()
    if not args.source.exists():
        raise SystemExit(f"--source {args.source} does not exist; expected the CIFAR-10 JPEG zip "
                         "(/work/shared/data/cifar10-jpeg.zip)")
    kept = pack(args.source, args.out, args.train_per_class, args.test_per_class)
    data, tree = args.out.stat().st_size / 2**20, tree_mib()
    for split in ("train", "test"):
        print(f"{split}: {sum(n for (s, _), n in kept.items() if s == split)} images")
    print(f"wrote {args.out} ({data:.1f} MiB); the tree is {tree:.1f} MiB: {data + tree:.1f} of {LIMIT_MIB} MiB travel")
    if data + tree > LIMIT_MIB:
        raise SystemExit("too big to travel: lower --test-per-class or --train-per-class")


if __name__ == "__main__":
    main()
