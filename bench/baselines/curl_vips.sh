#!/usr/bin/env bash
# What a shell user would do: curl_vips.sh API SECTION OUT_DIR JOBS
#
# 1. the listing: curl each page of API/3/gallery/SECTION/viral/<n>.json until one comes back empty,
#    jq picks the links of image/jpeg and image/png items;
# 2. every download with one `curl --parallel` (curl's default of 50 transfers at once) into OUT_DIR;
# 3. every thumbnail with vipsthumbnail -s 128x128 (shrink-on-load like pixflow), JOBS processes at a
#    time with `xargs -P JOBS` (16 files per process), written as OUT_DIR/<stem>_thumbnail.<ext>.
# Needs curl, jq and vipsthumbnail (libvips-tools). Prints the phase times as JSON on stdout.
set -euo pipefail

[[ $# -eq 4 ]] || { echo "usage: curl_vips.sh API SECTION OUT_DIR JOBS" >&2; exit 2; }
api=$1 section=$2 out=$3 jobs=$4
mkdir -p "$out"
now() { date +%s.%N; }

started=$(now)
urls=$out/.urls
: >"$urls"
page=0
while :; do
  body=$(curl -sSf -H "Authorization: Client-ID bench" "$api/3/gallery/$section/viral/$page.json")
  [[ $(jq '.data | length' <<<"$body") -gt 0 ]] || break
  jq -r '.data[] | select(.type == "image/jpeg" or .type == "image/png") | .link' <<<"$body" >>"$urls"
  page=$((page + 1))
done
listed=$(now)

xargs curl -sSf --parallel --remote-name-all --output-dir "$out" <"$urls"
downloaded=$(now)

# vipsthumbnail's -o names the output after the input's stem, in the input's folder; the extension
# picks the format, so JPEGs and PNGs go through separate runs.
find "$out" -maxdepth 1 -name '*.jpg' ! -name '*_thumbnail.*' -print0 | xargs -0 -r -P "$jobs" -n 16 vipsthumbnail -s 128x128 -o '%s_thumbnail.jpg'
find "$out" -maxdepth 1 -name '*.png' ! -name '*_thumbnail.*' -print0 | xargs -0 -r -P "$jobs" -n 16 vipsthumbnail -s 128x128 -o '%s_thumbnail.png'
done_at=$(now)

awk -v n="$(wc -l <"$urls")" -v t0="$started" -v t1="$listed" -v t2="$downloaded" -v t3="$done_at" 'BEGIN {
  printf "{\"items\": %d, \"listing_s\": %.3f, \"download_s\": %.3f, \"thumbnails_s\": %.3f, \"wall_s\": %.3f}\n",
         n, t1 - t0, t2 - t1, t3 - t2, t3 - t0 }'
