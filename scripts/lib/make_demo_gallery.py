#!/usr/bin/env python3
"""Build the demo gallery from the sample photos, offline: make_demo_gallery.py SRC_DIR OUT_DIR

Every sample photo (JPEG/PNG/WebP, not the tiny one) becomes several distinct real-photo files of
varied sizes and shapes (scaled to a few long sides, a square crop, a panorama crop), named like
aqua-1920.jpg, aqua-sq512.jpg, aqua-pano.jpg, in its own format; tiny.jpg is kept as it is. JPEG
EXIF (orientation) and progressive encoding are kept. About 60 files, ~15 MB.

Cached: OUT_DIR/.stamp records this script and the sources; when it matches, nothing is redone.
The folder is built beside OUT_DIR and renamed into place, so an interrupted run leaves no half gallery.
"""
import hashlib
import shutil
import sys
from pathlib import Path

from PIL import Image

LONG_SIDES = [1920, 1440, 1080, 720, 480]
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
KEEP_AS_IS = {"tiny.jpg"}  # too small to scale up into anything photo-like


def stamp_of(sources) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    for src in sources:
        h.update(src.name.encode())
        h.update(hashlib.sha256(src.read_bytes()).digest())
    return h.hexdigest()


def scaled(img: Image.Image, long_side: int) -> Image.Image:
    w, h = img.size
    f = long_side / max(w, h)
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)


def center_crop(img: Image.Image, aspect: float) -> Image.Image:
    """The largest centered crop with width/height == aspect."""
    w, h = img.size
    if w / h > aspect:
        cw, ch = round(h * aspect), h
    else:
        cw, ch = w, round(w / aspect)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def save(img: Image.Image, path: Path, fmt: str, src_info: dict) -> None:
    kwargs = {}
    if fmt == "JPEG":
        kwargs = {"quality": 88, "optimize": True}
        if src_info.get("progressive") or src_info.get("progression"):
            kwargs["progressive"] = True
        if "exif" in src_info:
            kwargs["exif"] = src_info["exif"]  # keeps the orientation tag: crops are of stored pixels
    elif fmt == "WEBP":
        kwargs = {"quality": 85}
    elif fmt == "PNG":
        kwargs = {"compress_level": 6}
    img.save(path, fmt, **kwargs)


def build(src_dir: Path, out_dir: Path) -> int:
    sources = sorted(p for p in src_dir.iterdir() if p.suffix.lower() in FORMATS)
    stamp = stamp_of(sources)
    stamp_file = out_dir / ".stamp"
    if stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return sum(1 for p in out_dir.iterdir() if not p.name.startswith("."))

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    count = 0
    for src in sources:
        fmt = FORMATS[src.suffix.lower()]
        if src.name in KEEP_AS_IS:
            shutil.copyfile(src, tmp / src.name)
            count += 1
            continue
        with Image.open(src) as opened:
            info = dict(opened.info)
            img = opened.copy()
        variants = [("%d" % side, scaled(img, side)) for side in LONG_SIDES]
        variants.append(("sq512", scaled(center_crop(img, 1.0), 512)))
        variants.append(("pano", scaled(center_crop(img, 2.5), 1600)))
        for suffix, variant in variants:
            save(variant, tmp / ("%s-%s%s" % (src.stem, suffix, src.suffix)), fmt, info)
            count += 1
    (tmp / ".stamp").write_text(stamp + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return count


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[1].strip(), file=sys.stderr)
        return 2
    count = build(Path(sys.argv[1]), Path(sys.argv[2]))
    print("%d photos in %s" % (count, sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
