#!/usr/bin/env python3
"""Build the benchmark photo set: prepare_data.py DEBS_DIR OUT_DIR [--count N] [--seed S]

Real photographs from two Debian packages (downloaded by scripts/bench with `apt-get download` into
DEBS_DIR, unpacked here with `dpkg-deb -x`):
  mate-backgrounds             usr/share/backgrounds/mate/nature/*.jpg        (12 photos, 1280..2560 px)
  plasma-workspace-wallpapers  usr/share/wallpapers/<Name>/contents/images/   (the 12 photographs among
                               the wallpapers, the largest variant, 2560..5120 px; the others are renders)
Each output is a random crop (aspect 3:2, 4:3, 16:9, 1:1 or portrait) of one source, resized with
Lanczos so its long side is log-uniform in 800..4000 px (upscaled by at most 1.6x when the crop is
smaller), and saved as baseline JPEG (quality 75..92), progressive JPEG (a quarter of the JPEGs), or PNG
(12%, long side <= 2000 px, as web PNGs tend to be smaller). Names are p0001-<source>.jpg etc.

Two more sets are made from the same photos, each in its own folder (bench/run.py serves each one):
  OUT_DIR/large      the photos above (hard links) plus LARGE_COUNT large ones of 8..15 MB, spread through
                     the listing order (p0030b-..., p0060b-..., up to the last place): crops of the
                     sources, enlarged up to 2.5x with a colour grain added (a camera's resolution and
                     sensor noise), saved as baseline JPEG (6000 px, quality 88..100, 4:4:4) or PNG (3),
                     each sized to a target drawn in 8..15 MB (what a camera's photos weigh);
  OUT_DIR/baseline   the same photos, every one a baseline JPEG: the baseline JPEGs above (hard links), the
                     progressive JPEGs and PNGs decoded and saved again as baseline JPEG (quality 75..92).

Deterministic for a given seed; cached: OUT_DIR/.stamp holds a hash of this script, the arguments and
the sources, and when it matches nothing is redone. The set is built beside OUT_DIR and renamed into
place. Prints a one-line summary of the main set (count, formats, total MB, long-side range).
"""
import argparse
import hashlib
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageChops

MATE_DEB = "mate-backgrounds"
PLASMA_DEB = "plasma-workspace-wallpapers"
# The photographs among Plasma's wallpapers (the rest are renders/illustrations).
PLASMA_PHOTOS = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                 "Grey", "Kite", "OneStandsOut", "Path", "Volna", "summer_1am"]
ASPECTS = [(3, 2, 5), (4, 3, 4), (16, 9, 3), (1, 1, 2), (2, 3, 2), (3, 4, 1)]  # w, h, weight
MIN_LONG, MAX_LONG = 800, 4000
MAX_UPSCALE = 1.6
PNG_SHARE, PNG_MAX_LONG = 0.12, 2000
PROGRESSIVE_SHARE = 0.25
LARGE_COUNT, LARGE_PNG = 10, 3           # large photos in OUT_DIR/large, of which PNG
LARGE_MIN_MB, LARGE_MAX_MB = 8.0, 15.0   # their sizes (10^6 bytes)
LARGE_MAX_LONG = 6000                    # px, long side
LARGE_UPSCALE, LARGE_GRAIN = 2.5, 4      # their enlargement at most, grain (standard deviation, levels)


def find_deb(debs: Path, package: str) -> Path:
    found = sorted(debs.glob(package + "_*.deb"))
    if not found:
        sys.exit("prepare_data.py: no %s_*.deb in %s (scripts/bench downloads it)" % (package, debs))
    return found[-1]


def source_photos(debs: Path, unpack: Path) -> list:
    if unpack.exists():
        shutil.rmtree(unpack)
    unpack.mkdir(parents=True)
    for package in (MATE_DEB, PLASMA_DEB):
        subprocess.run(["dpkg-deb", "-x", str(find_deb(debs, package)), str(unpack)], check=True)
    sources = sorted((unpack / "usr/share/backgrounds/mate/nature").glob("*.jpg"))
    for name in PLASMA_PHOTOS:
        variants = list((unpack / "usr/share/wallpapers" / name / "contents/images").glob("*x*.jpg"))
        if variants:
            sources.append(max(variants, key=lambda p: int(p.stem.split("x")[0])))
    if len(sources) < 12:
        sys.exit("prepare_data.py: found only %d source photos in the packages" % len(sources))
    return sources


def stamp_of(args, debs: list) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps([args.count, args.seed]).encode())
    for deb in debs:
        h.update(deb.name.encode())
    return h.hexdigest()


def source_name(src: Path) -> str:
    """Aqua for mate's nature/Aqua.jpg, Kite for Plasma's Kite/contents/images/2560x1600.jpg."""
    return src.parent.parent.parent.name if src.parent.name == "images" else src.stem


def make_one(rng: random.Random, index: int, src: Path, img: Image.Image, out: Path) -> dict:
    aw, ah, _ = rng.choices(ASPECTS, weights=[a[2] for a in ASPECTS])[0]
    is_png = rng.random() < PNG_SHARE
    long_target = math.exp(rng.uniform(math.log(MIN_LONG), math.log(PNG_MAX_LONG if is_png else MAX_LONG)))
    sw, sh = img.size
    # The largest crop of that aspect, then a random share of it (a larger share for larger targets).
    if sw / sh > aw / ah:
        cw, ch = sh * aw / ah, sh
    else:
        cw, ch = sw, sw * ah / aw
    need = min(1.0, long_target / MAX_UPSCALE / max(cw, ch))
    share = rng.uniform(max(0.55, need), 1.0)
    cw, ch = cw * share, ch * share
    left, top = rng.uniform(0, sw - cw), rng.uniform(0, sh - ch)
    crop = img.crop((round(left), round(top), round(left + cw), round(top + ch)))
    long_side = min(round(long_target), round(max(crop.size) * MAX_UPSCALE))
    f = long_side / max(crop.size)
    size = (max(1, round(crop.size[0] * f)), max(1, round(crop.size[1] * f)))
    pic = crop.resize(size, Image.LANCZOS)
    pic.info.pop("icc_profile", None)  # libpng warns about some sources' profiles on every decode
    stem = ("p%04d-%s" % (index, source_name(src))).lower()
    if is_png:
        path = out / (stem + ".png")
        pic.save(path, "PNG", compress_level=6)
        kind = "png"
    else:
        path = out / (stem + ".jpg")
        progressive = rng.random() < PROGRESSIVE_SHARE
        pic.save(path, "JPEG", quality=rng.randint(75, 92), progressive=progressive, optimize=progressive)
        kind = "progressive jpeg" if progressive else "jpeg"
    return {"name": path.name, "kind": kind, "width": size[0], "height": size[1], "bytes": path.stat().st_size,
            "upscaled": f > 1.0}


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def encoded_size(pic: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    pic.save(buffer, **save)
    return buffer.getvalue()


def make_large(rng: random.Random, position: int, src: Path, img: Image.Image, as_png: bool, out: Path) -> dict:
    """One photo of LARGE_MIN_MB..LARGE_MAX_MB, near a size drawn in that range: a large crop, enlarged
    (at most LARGE_UPSCALE) with a colour grain of LARGE_GRAIN levels added, standing for a camera's
    resolution and sensor noise (the sources are smooth, downscaled wallpapers: without it no quality
    reaches 8 MB). JPEG: LARGE_MAX_LONG px, the lowest quality in 88..100 (4:4:4) that reaches the
    size; PNG: the pixel count scaled from a probe to reach it."""
    target = rng.uniform(LARGE_MIN_MB, LARGE_MAX_MB) * 1e6
    sw, sh = img.size
    share = rng.uniform(0.85, 1.0)
    cw, ch = sw * share, sh * share
    left, top = rng.uniform(0, sw - cw), rng.uniform(0, sh - ch)
    crop = img.crop((round(left), round(top), round(left + cw), round(top + ch)))
    crop.info.pop("icc_profile", None)
    stem = ("p%04db-large-%s" % (position, source_name(src))).lower()
    grain_seed = rng.getrandbits(32)

    def made(long_side: float) -> Image.Image:
        long_side = min(long_side, LARGE_MAX_LONG, max(crop.size) * LARGE_UPSCALE)
        f = long_side / max(crop.size)
        pic = crop.resize((max(1, round(crop.size[0] * f)), max(1, round(crop.size[1] * f))), Image.BICUBIC)
        noise = random.Random(grain_seed)  # uniform in [-a, a], a = sqrt(3) x the standard deviation
        a = round(LARGE_GRAIN * math.sqrt(3))
        lut = [128 - a + (v * (2 * a + 1)) // 256 for v in range(256)]
        grain = Image.merge("RGB", [Image.frombytes("L", pic.size, noise.randbytes(pic.size[0] * pic.size[1])).point(lut)
                                    for _ in range(3)])
        return ImageChops.add(pic, grain, 1.0, -128)

    if as_png:
        probe = made(2000)
        probe_bytes = len(encoded_size(probe, format="PNG", compress_level=6))
        pic = made(max(probe.size) * math.sqrt(target / probe_bytes))
        data = encoded_size(pic, format="PNG", compress_level=6)
        path, kind = out / (stem + ".png"), "png"
    else:
        pic = made(LARGE_MAX_LONG)
        lo, hi, best = 88, 100, None
        while lo <= hi:  # the lowest quality whose file reaches the target (or 100)
            q = (lo + hi) // 2
            data = encoded_size(pic, format="JPEG", quality=q, subsampling=0)
            if len(data) >= target:
                best, hi = data, q - 1
            else:
                lo = q + 1
        data = best if best is not None else encoded_size(pic, format="JPEG", quality=100, subsampling=0)
        path, kind = out / (stem + ".jpg"), "jpeg"
    path.write_bytes(data)
    return {"name": path.name, "kind": kind, "width": pic.size[0], "height": pic.size[1], "bytes": len(data),
            "upscaled": max(pic.size) > max(crop.size)}


def build_large(rng: random.Random, files: list, photos: Path, sources: list, opened: dict, out: Path) -> list:
    out.mkdir(parents=True)
    for f in files:
        link_or_copy(photos / f["name"], out / f["name"])
    # The largest sources first (Volna is 5120x2880), then by name, for a fixed choice.
    by_size = sorted(sources, key=lambda s: (-opened[s].size[0] * opened[s].size[1], source_name(s)))
    png_at = {round((i + 0.5) * LARGE_COUNT / LARGE_PNG) for i in range(LARGE_PNG)}
    large = []
    for k in range(LARGE_COUNT):
        src = by_size[k % len(by_size)]
        position = round(len(files) * (k + 1) / LARGE_COUNT)  # spread through the listing, one at the end
        large.append(make_large(rng, position, src, opened[src], k in png_at, out))
    return files + large


def build_baseline(rng: random.Random, files: list, photos: Path, out: Path) -> list:
    out.mkdir(parents=True)
    made = []
    for f in files:
        if f["kind"] == "jpeg":
            link_or_copy(photos / f["name"], out / f["name"])
            made.append(dict(f))
            continue
        name = Path(f["name"]).stem + ".jpg"
        with Image.open(photos / f["name"]) as im:
            im.convert("RGB").save(out / name, "JPEG", quality=rng.randint(75, 92), progressive=False)
        made.append(dict(f, name=name, kind="jpeg", bytes=(out / name).stat().st_size))
    return made


def build(args) -> dict:
    debs_dir, out = Path(args.debs).resolve(), Path(args.out).resolve()
    debs = [find_deb(debs_dir, MATE_DEB), find_deb(debs_dir, PLASMA_DEB)]
    stamp = stamp_of(args, debs)
    manifest = out / "manifest.json"
    if (out / ".stamp").exists() and (out / ".stamp").read_text().strip() == stamp and manifest.exists():
        return json.loads(manifest.read_text())

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "photos").mkdir(parents=True)
    sources = source_photos(debs_dir, tmp / "unpacked")
    rng = random.Random(args.seed)
    files = []
    opened = {}
    for i in range(args.count):
        src = sources[i % len(sources)]
        if src not in opened:
            with Image.open(src) as im:
                opened[src] = im.convert("RGB")
        files.append(make_one(rng, i + 1, src, opened[src], tmp / "photos"))
    for src in sources:
        if src not in opened:
            with Image.open(src) as im:
                opened[src] = im.convert("RGB")
    # Separate random streams: the main set above is the same as before these sets existed.
    large = build_large(random.Random(args.seed + 1), files, tmp / "photos", sources, opened, tmp / "large")
    baseline = build_baseline(random.Random(args.seed + 2), files, tmp / "photos", tmp / "baseline")
    shutil.rmtree(tmp / "unpacked")
    data = {"sources": ["%s (%dx%d)" % ((source_name(s),) + opened[s].size) for s in sources if s in opened],
            "source_packages": [d.name for d in debs], "files": files,
            "sets": {"large": {"files": large, "summary": large_summary(large, len(files))},
                     "baseline": {"files": baseline, "summary": summary({"files": baseline})}}}
    (tmp / "manifest.json").write_text(json.dumps(data, indent=1) + "\n")
    (tmp / ".stamp").write_text(stamp + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return data


def summary(data: dict) -> str:
    files = data["files"]
    kinds = {}
    for f in files:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    longs = sorted(max(f["width"], f["height"]) for f in files)
    total = sum(f["bytes"] for f in files)
    return "%d photos (%s), %.0f MB, long side %d..%d px (median %d), %d of them enlarged (at most 1.6x) from a smaller crop" % (
        len(files), ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())), total / 1e6,
        longs[0], longs[-1], longs[len(longs) // 2], sum(1 for f in files if f["upscaled"]))


def large_summary(files: list, base: int) -> str:
    big = files[base:]
    return "the %d photos plus %d large ones (%s), %.1f..%.1f MB, long side %d..%d px, enlarged at most %gx with grain; %.0f MB in all" % (
        base, len(big), ", ".join("%d %s" % (sum(1 for f in big if f["kind"] == k), k) for k in ("jpeg", "png")),
        min(f["bytes"] for f in big) / 1e6, max(f["bytes"] for f in big) / 1e6,
        min(max(f["width"], f["height"]) for f in big), max(max(f["width"], f["height"]) for f in big),
        LARGE_UPSCALE, sum(f["bytes"] for f in files) / 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("debs")
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    print(summary(build(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
