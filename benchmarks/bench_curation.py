"""Benchmark: the cost of curation per generation against no curation, Gaussian and GMM families.

Both sides are collapse in one process, same config, same seed: ``curation=none`` is the baseline, each rule
draws 2 candidates per kept point (oversampling factor 2: threshold q = 0.5, importance, pairwise, best_of
k = 2) and scores them. Time is the run time of the compiled program per generation (compilation excluded,
best of --repeats), with 1000 replicates of a fully synthetic chain of 100 points per generation.

Two metric settings: "loop" (metrics.every = G, no sample metrics: the loop itself, where curation's share
is largest) and "default" (the default metrics every generation: what a user runs). The Gaussian baseline
is timed on both engine paths: ``engine.path=samples`` (the points, as curation needs) and ``auto`` (the
exact sufficient-statistic path, which draws no points and is the fastest uncurated Gaussian chain).
Target (issue 7): <= 2x the uncurated time at oversampling 2.

Usage: python benchmarks/bench_curation.py [--replicates R] [--generations G] [--gmm-generations G] [--repeats n]
       [--quick]
"""
from __future__ import annotations

import numpy as np

from _common import parse, parser, start

RULES = {
    "threshold/model_loglik": ["curation=threshold", "curation.score=model_loglik", "curation.quantile=0.5",
                               "curation.oversample=2"],
    "importance/density_ratio": ["curation=importance", "curation.score=density_ratio", "curation.oversample=2"],
    "importance(systematic)/density_ratio": ["curation=importance", "curation.score=density_ratio",
                                             "curation.oversample=2", "curation.resampling=systematic"],
    "pairwise/reward": ["curation=pairwise", "curation.score=reward"],
    "best_of(k=2)/true_loglik": ["curation=best_of", "curation.k=2", "curation.score=true_loglik"],
    "importance/detector": ["curation=importance", "curation.score=detector", "curation.oversample=2"],
}
FAMILIES = {
    "gaussian": ["source=gaussian", "model=gaussian"],
    "gmm": ["source=gmm", "model=gmm", "source.dim=2", "source.components=5", "model.components=5",
            "model.em_steps=20"],
}


def timed(collapse, overrides: list[str], repeats: int) -> tuple[float, object]:
    """Best run time (s, compile excluded) of ``repeats`` runs, and the last result."""
    best, res = np.inf, None
    for _ in range(repeats):
        res = collapse.simulate(*overrides)
        best = min(best, res.summary["run_s"])
    return best, res


def main() -> None:
    p = parser(__doc__, replicates=1000, generations=50, samples=100)
    p.add_argument("--gmm-generations", type=int, default=5, help="GMM chains are slow (EM): fewer generations")
    args = parse(p)
    _, collapse = start(args.pin, "bench_curation: curation overhead per generation vs curation=none",
                        "Both sides are collapse (same config and seed); the baseline is curation=none.",
                        args.repeats)
    worst = {}
    for fam, fam_ov in FAMILIES.items():
        G = args.generations if fam == "gaussian" else min(args.generations, args.gmm_generations)
        base = [f"replicates={args.replicates}", f"generations={G}", f"loop.samples={args.samples}",
                f"seed={args.seed}", "quiet=true", "loop.real_fraction=0", "metrics.draws=0"]
        settings = {"loop": ["metrics.sample_based=false", f"metrics.every={G}"], "default": []}
        print(f"{fam}: {args.replicates} replicates x {G} generations of {args.samples} points", flush=True)
        for label, met in settings.items():
            common = [*base, *fam_ov, *met]
            collapse.simulate(*common[:-len(met) or None], "generations=2", "replicates=2")  # warm-up
            t_none, _ = timed(collapse, [*common, "engine.path=samples"], args.repeats)
            ms = 1e3 / max(1, G - 1)
            line = f"{fam:8s} {label:7s} none (samples path) {t_none * ms:8.3f} ms/gen"
            if fam == "gaussian":
                t_auto, r = timed(collapse, common, args.repeats)
                line += f"   none (auto = {r.summary['engine_path']} path) {t_auto * ms:8.3f} ms/gen"
            print(line, flush=True)
            for rule, ov in RULES.items():
                t, res = timed(collapse, [*common, *ov], args.repeats)
                rate = res.metrics.loc[res.metrics["generation"] == G - 1, "accept_rate"].mean()
                extra = f"   vs auto path {t / t_auto:5.2f}x" if fam == "gaussian" else ""
                print(f"    {rule:38s} {t * ms:8.3f} ms/gen   {t / t_none:5.2f}x none{extra}   "
                      f"(accept_rate {rate:.3f})", flush=True)
                if not rule.endswith("detector"):
                    worst[(fam, label)] = max(worst.get((fam, label), 0.0), t / t_none)
    for (fam, label), r in worst.items():
        print(f"worst ratio of the oversample-2 rules (detector aside), {fam}, {label} metrics: {r:.2f}x "
              f"({'meets' if r <= 2.0 else 'misses'} the <= 2x target)")


if __name__ == "__main__":
    main()
