#!/usr/bin/env python3
"""The seeds' design (the Python recipes users follow today: threads for the downloads, then processes
for Pillow thumbnails, in two phases), as one script: seed_pipeline.py --api URL --section S --out DIR

Phase 0: the listing, page after page, with urllib (`Authorization: Client-ID ...`), keeping the links of
         image/jpeg and image/png items (as the seeds' get_links does), until a page comes back empty.
Phase 1: every download with concurrent.futures.ThreadPoolExecutor() (its default worker count, as in
         the seeds: min(32, cores + 4)), urllib.request.urlopen, written to OUT/<basename of the link>.
Phase 2: every thumbnail with concurrent.futures.ProcessPoolExecutor() (one process per core): Pillow's
         Image.open, Image.thumbnail((128, 128)) and save as OUT/<stem>_thumbnail<suffix>.
Run with Debian's python3 and python3-pil (/usr/bin/python3). Prints the phase times as JSON on stdout.
"""
import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from urllib.request import Request, urlopen

from PIL import Image

TYPES = {"image/jpeg", "image/png"}


def get_links(api: str, section: str, client_id: str) -> list:
    headers = {"Authorization": "Client-ID {}".format(client_id)}
    links = []
    page = 0
    while True:
        req = Request("%s/3/gallery/%s/viral/%d.json" % (api, section, page), headers=headers, method="GET")
        with urlopen(req) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        if not data["data"]:
            return links
        links += [item["link"] for item in data["data"] if "type" in item and item["type"] in TYPES]
        page += 1


def download_link(directory: Path, link: str) -> None:
    download_path = directory / os.path.basename(link)
    with urlopen(link) as image, download_path.open("wb") as f:
        f.write(image.read())


def create_thumbnail(size, path: Path) -> None:
    path = Path(path)
    name = path.stem + "_thumbnail" + path.suffix
    thumbnail_path = path.with_name(name)
    image = Image.open(path)
    image.thumbnail(size)
    image.save(thumbnail_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--section", default="hot")
    parser.add_argument("--client-id", default="bench")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    started = time.monotonic()
    download_dir = Path(args.out)
    download_dir.mkdir(parents=True, exist_ok=True)
    links = get_links(args.api, args.section, args.client_id)
    listed = time.monotonic()
    with ThreadPoolExecutor() as executor:
        list(executor.map(partial(download_link, download_dir), links))
    downloaded = time.monotonic()
    with ProcessPoolExecutor() as executor:
        list(executor.map(partial(create_thumbnail, (128, 128)), sorted(download_dir.iterdir())))
    done = time.monotonic()
    print(json.dumps({"items": len(links), "listing_s": listed - started, "download_s": downloaded - listed,
                      "thumbnails_s": done - downloaded, "wall_s": done - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
