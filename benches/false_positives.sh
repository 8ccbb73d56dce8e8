#!/usr/bin/env bash
# The copy verdict's false positives on thousands of non-copies (docs/matching.md, §4): registers
# a benchmark set's references alone, then searches the first N prints of its haystack, which
# `make_dataset.py --haystack` draws from pools that no reference uses, and prints how many of
# them the best answer would call copies at each bar. The set's 153 or so negatives can only tell
# a false-positive rate of 0 from 0.6%; thousands tell whether it is under 0.1%.
# Usage: benches/false_positives.sh SET [N]   (SET holds refs/ and haystack/; N default 6000).
# Every verdict is listed in $SCALE_DIR/false-positives.jsonl (default ./scale-work), to be looked
# at: the sources hold near-twins (a texture in two colourways, a clip-art drawing in variants).
set -euo pipefail
(($# >= 1)) || { echo "usage: benches/false_positives.sh SET [N]" >&2; exit 2; }
set_dir=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
eval_dir=${HUAXING_EVAL_DIR:-$(pwd)/../shared/eval}
count=${2:-6000}
work=${SCALE_DIR:-$(pwd)/scale-work}
token=hx_scale_bench_token_0123456789
[ -d "$set_dir/refs" ] && [ -d "$set_dir/haystack" ] || {
  echo "$set_dir needs refs/ and haystack/ (make_dataset.py --haystack N)" >&2
  exit 2
}
mkdir -p "$work"
cargo build --release --quiet
bin=$(pwd)/target/release/huaxing
data=$work/data-false-positives
rm -rf "$data"
"$bin" import "$set_dir/refs" --data "$data" >"$work/false-positives-import.txt" \
  2>"$work/false-positives-import.log" || { tail -5 "$work/false-positives-import.log" >&2; exit 1; }
HUAXING_ADMIN_TOKEN=$token "$bin" serve --data "$data" --addr 127.0.0.1:0 \
  >"$work/false-positives-serve.out" 2>"$work/false-positives-serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until grep -q "listening on" "$work/false-positives-serve.out" 2>/dev/null; do
  kill -0 $pid 2>/dev/null || { cat "$work/false-positives-serve.log" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^huaxing listening on //p' "$work/false-positives-serve.out")
python3 - "$eval_dir" "$url" "$token" "$set_dir/haystack" "$count" "$work/false-positives.jsonl" <<'EOF'
import json, os, sys, threading
from concurrent.futures import ThreadPoolExecutor

eval_dir, url, token, folder, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[6]
count = int(sys.argv[5])
sys.path.insert(0, eval_dir)
from run_eval import Client  # the benchmark's own HTTP client, one connection per thread

clients = threading.local()

def best_answer(name):
    if not hasattr(clients, "client"):
        clients.client = Client(url, token)
    with open(os.path.join(folder, name), "rb") as f:
        reply = clients.client.multipart("/api/v1/search?k=1", [(name, f.read())])
    if reply is None:
        sys.exit(f"search of {name} failed: {clients.client.errors[-1]}")
    if not reply["matches"]:
        return {"print": name, "score": 0.0, "copy": False}
    m = reply["matches"][0]
    return {"print": name, "reference": m.get("reference"), "score": m["score"], "copy": m["copy"],
            "summary": m["explanation"]["summary"]}

names = sorted(os.listdir(folder))[:count]
if not names:
    sys.exit(f"no prints in {folder}")
with ThreadPoolExecutor(2) as pool:
    answers = list(pool.map(best_answer, names))
with open(out, "w") as f:
    for a in sorted(answers, key=lambda a: -a["score"]):
        if a["copy"]:
            f.write(json.dumps(a) + "\n")
n = len(answers)
copies = sum(a["copy"] for a in answers)
print(f"{n} non-copies searched; judged copies: {copies} ({100 * copies / n:.2f}%), "
      f"against {len({a['reference'] for a in answers if a['copy']})} references")
for bar in (0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9):
    over = sum(a["score"] >= bar for a in answers)
    print(f"  best answer at {bar:.2f} or more: {over} ({100 * over / n:.2f}%)")
EOF
echo "verdicts: $work/false-positives.jsonl"
