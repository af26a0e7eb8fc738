#!/usr/bin/env python3
"""Every node `pixflow <command> --dump-graph` prints is drawn in README.md's first drawing, by name.

usage: check_readme_graph.py PIXFLOW README.md PHOTOS_DIR
"""
import re
import subprocess
import sys


def node_names(dot: str) -> set:
    # n4 [label="limit 64", shape=octagon];  n5 [label="resume\nroute", ...]: the name is the first line.
    return {m.group(1) for m in re.finditer(r'\[label="([^"\\]+)', dot)}


def main() -> int:
    pixflow, readme, photos = sys.argv[1:4]
    text = open(readme, encoding="utf-8").read()
    drawing = text.split("```", 2)[1]
    commands = {
        "gallery": ["gallery", "--api", "http://127.0.0.1:9", "--client-id", "x"],
        "urls": ["urls", "-"],
        "thumbs": ["thumbs", photos],
    }
    missing = []
    for name, args in commands.items():
        dot = subprocess.run([pixflow, *args, "--out", "/nonexistent/never-written", "--dump-graph"],
                             check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
        names = node_names(dot)
        if not names:
            print(f"{name}: --dump-graph printed no node", file=sys.stderr)
            return 1
        missing += [f"{name}: {n}" for n in sorted(names) if n not in drawing]
    if missing:
        print("nodes --dump-graph prints that README.md's drawing does not name:\n  " + "\n  ".join(missing),
              file=sys.stderr)
        return 1
    print("README.md draws every node of gallery, urls and thumbs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
