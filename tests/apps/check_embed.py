#!/usr/bin/env python3
"""Runs the embed example on a folder of photos and checks what it wrote.

usage: check_embed.py EMBED PHOTOS_DIR OUT_DIR
Expects: each JPEG/PNG/WebP/GIF photo and MP4 video has OUT_DIR/<stem>_thumbnail<ext> (a GIF's is a PNG,
a video's poster a JPEG), fitting
128x128, grey (the custom "grayscale" stage ran), alpha kept where the photo has it, and nothing else is
written (no originals); each file of FAILING is reported with its reason and makes the exit code 1 (0
when there is none); the printed report counts every decoded photo in "grayscale".
"""
import pathlib
import re
import shutil
import subprocess
import sys

try:
    from PIL import Image, ImageChops, ImageStat
except ImportError:  # without Pillow: only the files' presence and image signatures are checked
    Image = None

THUMB_EXT = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png", ".webp": ".webp", ".gif": ".png", ".mp4": ".jpg"}
FAILING = {"broken.gif": "truncated gif"}  # the fixture's GIF cut short
SIGNATURE = {".jpg": b"\xff\xd8\xff", ".png": b"\x89PNG\r\n\x1a\n", ".webp": b"RIFF"}


def check_pixels(photo, thumb, problems):
    """The thumbnail fits the box, keeps alpha when the photo has it, and is grey."""
    with Image.open(thumb) as t:
        if max(t.size) > 128 or min(t.size) < 1:
            problems.append(f"{thumb.name}: size {t.size} does not fit 128x128")
        if photo.suffix.lower() not in (".gif", ".mp4"):  # Pillow reads no MP4; a GIF's alpha is its palette's
            with Image.open(photo) as source:
                if ("A" in source.getbands()) != ("A" in t.getbands()):
                    problems.append(f"{thumb.name}: alpha {t.mode}, source {source.mode}")
        r, g, b = t.convert("RGB").split()
        # lossy JPEG/WebP may move a grey pixel by a level or two; a colour photo is far off
        spread = max(ImageStat.Stat(ImageChops.difference(x, y)).mean[0] for x, y in ((r, g), (g, b)))
        if spread > 2.0:
            problems.append(f"{thumb.name}: not grey (mean channel difference {spread:.1f})")


def main():
    embed, photos, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    shutil.rmtree(out, ignore_errors=True)
    run = subprocess.run([embed, str(photos), str(out)], capture_output=True, text=True, timeout=300)
    print(run.stdout + run.stderr)
    images = sorted(p for p in photos.iterdir() if p.suffix.lower() in THUMB_EXT and p.name not in FAILING)
    failing = sorted(p for p in photos.iterdir() if p.name in FAILING)
    problems = []
    if run.returncode != (1 if failing else 0):
        problems.append(f"exit code {run.returncode}")
    for bad in failing:
        if f"{bad.name}: decode: {FAILING[bad.name]}" not in run.stderr:
            problems.append(f"{bad.name}: not reported as {FAILING[bad.name]}")
    m = re.search(r"^grayscale\s+compute\s+(\d+) items\s+0 failed", run.stdout, re.M)
    if not m or int(m[1]) != len(images):
        problems.append(f"report: grayscale should count {len(images)} items")
    expected = {photo.stem + "_thumbnail" + THUMB_EXT[photo.suffix.lower()] for photo in images}
    # OUT's lock file (.pixflow.lock) stays: it is how a run keeps others out, never an output.
    extra = sorted(p.name for p in out.iterdir() if p.name not in expected and p.name != ".pixflow.lock") if out.is_dir() else []
    if extra:
        problems.append(f"unexpected files in {out}: {extra}")
    for photo in images:
        thumb = out / (photo.stem + "_thumbnail" + THUMB_EXT[photo.suffix.lower()])
        if not thumb.is_file():
            problems.append(f"{thumb.name}: missing")
            continue
        if not thumb.read_bytes().startswith(SIGNATURE[thumb.suffix]):
            problems.append(f"{thumb.name}: not a {thumb.suffix} file")
        elif Image is not None:
            check_pixels(photo, thumb, problems)
    if Image is None:
        print("Pillow not found: the thumbnails' sizes, alpha and greyness were not checked")
    print(f"{len(images)} thumbnails and {len(failing)} failures checked: {len(problems)} problems")
    for p in problems:
        print("  " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
