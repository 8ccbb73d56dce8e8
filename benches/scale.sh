#!/usr/bin/env bash
# The scale bench (docs/scale.md): for each haystack size N, builds the public benchmark with N
# extra registered prints drawn from the distractor pools, imports the haystack in bulk, starts
# the service on it, runs the shared evaluation, and prints one table row:
#   N, resident memory, disk, start-up, import rate, search p50/p95, recall@1, µAP, FPR.
# Usage: benches/scale.sh [N ...]   (default: 0 10000). Work goes to $SCALE_DIR (default
# ./scale-work); the machine's figures depend on its cores and disk, so quote them with it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
eval_dir=${HUAXING_EVAL_DIR:-$root/../shared/eval}
work=${SCALE_DIR:-$root/scale-work}
token=hx_scale_bench_token_0123456789
sizes=("$@")
((${#sizes[@]})) || sizes=(0 10000)
mkdir -p "$work"
cargo build --release --quiet
bin=$root/target/release/huaxing

# The public set's sources and parameters (as build_public.sh), so the queries are the same.
[ -f "$work/public/truth.csv" ] || "$eval_dir/build_public.sh" "$work/public" >/dev/null
sources=${HUAXING_EVAL_SOURCES:-$HOME/.cache/huaxing-eval/sources}

rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

printf '%-8s %9s %9s %10s %11s %8s %8s %9s %6s %7s\n' \
  N "RSS MiB" "disk MiB" "start s" "import/s" "p50 ms" "p95 ms" recall@1 µAP FPR
for n in "${sizes[@]}"; do
  set_dir=$work/public
  if ((n > 0)); then
    set_dir=$work/haystack-$n
    [ -d "$set_dir/haystack" ] || python3 "$eval_dir/make_dataset.py" \
      --textures /usr/share/gimp/2.0/patterns --motifs "$sources/motifs" \
      --out "$set_dir" --refs 500 --negatives 250 --seed 11 --haystack "$n" >/dev/null 2>&1
  fi
  data=$work/data-$n
  rm -rf "$data"
  import_rate=-
  if ((n > 0)); then
    started=$(date +%s.%N)
    "$bin" import "$set_dir/haystack" --data "$data" >/dev/null 2>"$work/import-$n.log"
    import_rate=$(python3 -c "print(f'{$n / ($(date +%s.%N) - $started):.1f}')")
  fi
  started=$(date +%s.%N)
  HUAXING_ADMIN_TOKEN=$token "$bin" serve --data "$data" --addr 127.0.0.1:0 \
    >"$work/serve-$n.out" 2>"$work/serve-$n.log" &
  pid=$!
  until grep -q "listening on" "$work/serve-$n.out" 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { cat "$work/serve-$n.log" >&2; exit 1; }
    sleep 0.1
  done
  startup=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
  url=$(sed -n 's/^huaxing listening on //p' "$work/serve-$n.out")
  python3 "$eval_dir/run_eval.py" --url "$url" --dataset "$set_dir" --token "$token" \
    >"$work/eval-$n.txt" 2>"$work/eval-$n.log"
  rss=$(rss_mib $pid)
  kill -TERM $pid
  wait $pid || true
  disk=$(du -sm "$data" | cut -f1)
  "$bin" stats --data "$data" >"$work/stats-$n.txt"
  summary=$(grep -E '^huaxing' "$work/eval-$n.txt")
  all=$(grep -E '^ALL ' "$work/eval-$n.txt")
  latency=$(grep -E 'search p50' "$work/eval-$n.txt")
  map=$(sed -n 's/.*µAP=\([0-9.]*\).*/\1/p' <<<"$summary")
  fpr=$(sed -n 's/.*negatives=\([0-9.]*%\).*/\1/p' <<<"$summary")
  recall=$(awk '{print $3}' <<<"$all")
  p50=$(sed -n 's/.*p50 \([0-9]*\) ms.*/\1/p' <<<"$latency")
  p95=$(sed -n 's/.*p95 \([0-9]*\) ms.*/\1/p' <<<"$latency")
  printf '%-8s %9s %9s %10s %11s %8s %8s %9s %6s %7s\n' \
    "$n" "$rss" "$disk" "$startup" "$import_rate" "$p50" "$p95" "$recall" "$map" "$fpr"
done
echo "details: $work/{eval,stats,import,serve}-N.*"
