"""The configs of the regression fixture: tiny runs spanning every family, source kind, data regime, curation
rule and a vectorised sweep. ``record.py`` writes their ``metrics.parquet`` tables to ``tables/``;
``tests/test_regression_fixture.py`` reruns them and compares.

Recorded before the plug-in restructuring (issue 14) so that the restructuring provably changes no number."""
from __future__ import annotations

TINY = ("replicates=3", "quiet=true", "metrics.eval_samples=32", "metrics.heldout=64", "metrics.sample_every=2",
        "metrics.sample_replicates=2", "metrics.draws=0", "metrics.tail_samples=500", "metrics.tail_directions=16")

CASES: dict[str, tuple[str, ...]] = {
    "gaussian_stats": ("generations=6", "loop.samples=20", "source.dim=2"),
    "gaussian_samples_fresh": ("generations=6", "loop.samples=20", "engine.path=samples", "loop.real_fraction=0.25"),
    "gaussian_accumulate_f64": ("generations=5", "loop.samples=16", "loop.synthetic=accumulate",
                                "precision=float64", "source.dim=3", "model.estimator=unbiased"),
    "gaussian_subsample_fixed": ("generations=5", "loop.samples=16", "loop.synthetic=accumulate_subsample",
                                 "loop.real=fixed", "loop.real_fraction=0.5", "sampling.scale=0.9"),
    "gmm_em": ("generations=4", "loop.samples=40", "source=gmm", "model=gmm", "source.dim=2"),
    "kde_student_t": ("generations=4", "loop.samples=30", "source=student_t", "model=kde"),
    "zipf_categorical": ("generations=6", "loop.samples=50", "source=zipf", "model=categorical",
                         "source.categories=30", "sampling.scale=0.8"),
    "linear_fixed": ("generations=5", "source=linear", "model=linear_regression", "loop.samples=20",
                     "source.dim=3"),
    "linear_fresh_samples": ("generations=5", "source=linear", "model=linear_regression", "loop.samples=20",
                             "source.dim=3", "source.design=fresh", "engine.path=samples"),
    "markov_ngram": ("generations=4", "source=markov", "model=ngram", "loop.samples=2048"),
    "text_ngram_prompt": ("generations=3", "source=text", "model=ngram", "loop.samples=4096",
                          "sampling.prompt=real_prefix", "sampling.top_k=20"),
    "text_transformer": ("generations=2", "source=text", "model=transformer", "loop.samples=2048", "model.steps=5",
                         "model.layers=1", "model.d_model=32", "model.heads=2", "model.batch=8"),
    "digits_vae": ("generations=2", "source=digits", "model=vae", "loop.samples=128", "model.steps=10",
                   "model.batch=32"),
    "ring_diffusion": ("generations=2", "source=ring", "model=diffusion", "loop.samples=128", "model.steps=10",
                       "model.batch=32", "model.hidden=32", "model.sampler_steps=8"),
    "curation_threshold": ("generations=4", "loop.samples=20", "curation=threshold", "curation.score=true_loglik"),
    "curation_best_of_reward": ("generations=4", "loop.samples=20", "curation=best_of", "curation.score=reward"),
    "curation_importance_detector": ("generations=3", "loop.samples=20", "curation=importance",
                                     "curation.score=detector", "curation.detector.steps=10"),
    "curation_pairwise_zipf": ("generations=4", "loop.samples=40", "source=zipf", "model=categorical",
                               "curation=pairwise", "curation.score=model_loglik"),
    "curation_reward_markov_ngram": ("generations=4", "source=markov", "model=ngram", "loop.samples=2048",
                                     "curation=best_of", "curation.score=reward", "curation.k=2"),
    "curation_reward_ring_vae": ("generations=3", "source=ring", "model=vae", "loop.samples=128", "model.steps=10",
                                 "model.batch=32", "curation=best_of", "curation.score=reward", "curation.k=2"),
    "sweep_vectorised": ("generations=5", "loop.samples=20", "sweep.loop.real_fraction=[0,0.5]",
                         "sweep.sampling.scale=[1.0,0.8]"),
}


def overrides(name: str) -> list[str]:
    return [*TINY, *CASES[name]]
