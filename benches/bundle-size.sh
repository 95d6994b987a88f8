#!/usr/bin/env bash
# The browser bundle's size (docs/BENCHMARKS.md, "bundle"): the release wasm and js
# of a site's pkg/ directory, raw, gzip -9 and brotli (when `brotli` is installed),
# as a table and as target/bench/bundle.json. The target is 250 KB gzip in total (issue 15).
#
#   benches/bundle-size.sh [PKG_DIR]     (default: target/site/pkg, after
#                                         `cargo leptos build --release`)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pkg=${1:-$root/target/site/pkg}
out=${BENCH_OUT:-$root/target/bench}
mkdir -p "$out"
target_kb=250

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
# The .br that `make build-release` writes (what browsers are sent), else the brotli CLI.
br() {
  if [ -f "$1.br" ]; then size "$1.br"
  elif command -v brotli >/dev/null; then brotli -q 11 -c "$1" | wc -c | tr -d ' '
  else echo null; fi
}

printf '%-14s %12s %12s %12s\n' file raw gzip brotli
total_raw=0 total_gz=0 json=
for file in tether.wasm tether.js; do
  path=$pkg/$file
  [ -f "$path" ] || { echo "missing $path: run cargo leptos build --release" >&2; exit 1; }
  raw=$(size "$path") z=$(gz "$path") b=$(br "$path")
  total_raw=$((total_raw + raw)) total_gz=$((total_gz + z))
  printf '%-14s %12d %12d %12s\n' "$file" "$raw" "$z" "$b"
  json+="\"$file\": {\"raw\": $raw, \"gzip\": $z, \"brotli\": $b}, "
done
printf '%-14s %12d %12d\n' total "$total_raw" "$total_gz"
met=false
[ "$total_gz" -le $((target_kb * 1000)) ] && met=true
echo "gzip total: $((total_gz / 1000)) KB (target ≤ $target_kb KB): $([ $met = true ] && echo MET || echo MISSED)"
echo "{${json}\"total\": {\"raw\": $total_raw, \"gzip\": $total_gz}, \"target_gzip_kb\": $target_kb, \"met\": $met}" >"$out/bundle.json"
