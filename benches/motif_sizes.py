#!/usr/bin/env python3
"""Partial and rearranged copies with and without their motifs' sizes kept (docs/matching.md,
known limits): how much of what those copies lose is the size of their motifs.

Usage: python3 benches/motif_sizes.py PUBLIC OUT [N]
PUBLIC is the public set as ../shared/eval/build_public.sh builds it; N: its first N motif
references (default 80). Builds OUT as a data set for ../shared/eval/run_eval.py: PUBLIC's
references and distractors (linked), and four copies of each reference made with the
generator's own functions from the same random draws (kept and foreign motifs, places, turns,
layout, ground), differing only in the kept motifs' sizes:
  partial_drawn     as the generator's `partial`: sizes drawn anew;
  partial_kept      each kept motif at its original size ×0.75–1.25;
  rearranged_drawn  the generator's `rearranged` with sizes drawn anew;
  rearranged_kept   as the generator's `rearranged` (sizes ×0.75–1.25).
truth.csv's params give each kept motif's size change as log2(copy / original). Reads the
public set's sources where build_public.sh puts them (HUAXING_EVAL_SOURCES, as there)."""
import csv
import json
import os
import sys

import numpy as np

EVAL = os.environ.get("HUAXING_EVAL_DIR",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "eval"))
sys.path.insert(0, EVAL)
from make_dataset import split  # noqa: E402
from prints import LAYOUTS, motif_recipe, render_motif  # noqa: E402
from sources import load_motifs, load_textures  # noqa: E402

VARIANTS = ("partial_drawn", "partial_kept", "rearranged_drawn", "rearranged_kept")


def motif_pools(seed):
    """The motif list and the foreign-motif pool exactly as make_dataset.py draws them: the
    tiles are read only for their number, since the generator splits them first."""
    sources = os.environ.get("HUAXING_EVAL_SOURCES", os.path.expanduser("~/.cache/huaxing-eval/sources"))
    rng = np.random.default_rng(seed)
    tiles = load_textures("/usr/share/gimp/2.0/patterns")
    motifs = load_motifs(os.path.join(sources, "motifs"))
    split(rng, len(tiles), [0.5, 0.25, 0.25])
    _, _, m_neg = split(rng, len(motifs), [0.5, 0.2, 0.3])
    return motifs, m_neg[len(m_neg) // 2:]


def copy_recipe(variant, recipe, foreign, size, rng):
    """A partial or rearranged copy's recipe, drawn as transforms.py draws it."""
    ids = [p["motif"] for p in recipe["placements"]]
    if variant.startswith("partial"):
        keep = max(2, int(round(len(ids) * rng.uniform(0.5, 0.7))))
        kept = list(rng.choice(ids, keep, replace=False))
        others = list(rng.choice(foreign, max(1, len(ids) - keep), replace=False))
        return motif_recipe(rng, kept + others, size, palette_k=recipe["palette_k"])
    layout = LAYOUTS[int(rng.integers(len(LAYOUTS)))]
    ground = recipe["background"] if rng.random() < 0.5 else None
    return motif_recipe(rng, ids, size, layout=layout, background=ground, palette_k=recipe["palette_k"])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    public, out = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 80
    with open(os.path.join(public, "manifest.json")) as f:
        manifest = json.load(f)
    motifs, foreign = motif_pools(manifest["seed"])
    size = manifest["size"]
    os.makedirs(os.path.join(out, "queries"), exist_ok=True)
    for folder in ("refs", "distractors"):
        link = os.path.join(out, folder)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(os.path.join(public, folder)), link)
    references = [(name, entry["recipe"]) for name, entry in sorted(manifest["refs"].items())
                  if entry["recipe"]["kind"] == "motif"][:count]
    seeds = np.random.default_rng(5)
    rows = []
    for name, recipe in references:
        sides = {p["motif"]: p["side"] for p in recipe["placements"]}
        seed = int(seeds.integers(1 << 31))
        for variant in VARIANTS:
            rng = np.random.default_rng(seed)
            copy = copy_recipe(variant, recipe, foreign, size, rng)
            changes = []
            for placement in copy["placements"]:
                if placement["motif"] in sides:
                    factor = float(rng.uniform(0.75, 1.25))
                    if variant.endswith("kept"):
                        placement["side"] = sides[placement["motif"]] * factor
                    changes.append(float(np.log2(placement["side"] / sides[placement["motif"]])))
            query = f"{variant}_{seed:08x}.jpg"
            render_motif(copy, motifs, size).convert("RGB").save(os.path.join(out, "queries", query), quality=92)
            rows.append([query, name, variant, json.dumps({"log2_size": changes})])
    with open(os.path.join(out, "truth.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "ref", "family", "params"])
        writer.writerows(rows)
    print(f"{len(rows)} copies of {len(references)} references in {out}")


if __name__ == "__main__":
    main()
