"""The engine's pieces are chosen once, when a :class:`collapse.engine.Chain` is built, from the config and the
capabilities of the source and family (never from their kind or name)."""
from __future__ import annotations

import dataclasses

import pytest

from collapse import api
from collapse import config as C
from collapse import engine as E

TINY = ("replicates=2", "generations=3", "quiet=true", "metrics.sample_based=false")


def chain(*args: str, dynamic: frozenset = frozenset()) -> E.Chain:
    cfg = C.compose([*TINY, *args])
    with api.precision_context(cfg):
        source, family, spec, metrics = api.prepare(cfg)
    return E.Chain(source, family, spec, metrics, False, dynamic)


@pytest.mark.parametrize("args, path, real, mix, regime", [
    ((), E.StatsPath, E.FreshReal, E.StaticMix, E.Replace),
    (("engine.path=samples",), E.PointPath, E.FreshReal, E.StaticMix, E.Replace),
    (("loop.real=fixed", "loop.real_fraction=0.5"), E.StatsPath, E.FixedReal, E.StaticMix, E.Replace),
    (("loop.synthetic=accumulate",), E.StatsPath, E.FreshReal, E.StaticMix, E.AccumulateStats),
    (("loop.synthetic=accumulate", "engine.path=samples"), E.PointPath, E.FreshReal, E.StaticMix,
     E.AccumulateStats),
    (("loop.synthetic=accumulate_subsample",), E.PointPath, E.FreshReal, E.StaticMix, E.PoolSubsample),
    (("source=gmm", "model=gmm", "loop.synthetic=accumulate"), E.PointPath, E.FreshReal, E.StaticMix,
     E.PoolAccumulate),
    (("source=text", "model=ngram", "loop.samples=2048"), E.PointPath, E.FiniteReal, E.StaticMix, E.Replace),
])
def test_each_piece_is_chosen_once_from_the_config(args, path, real, mix, regime):
    c = chain(*args)
    assert (type(c.path), type(c.real), type(c.mix), type(c.regime)) == (path, real, mix, regime)
    assert isinstance(c.synthetic, E.Drawn)
    if isinstance(c.real, E.FixedReal):
        assert isinstance(c.real.base, E.FreshReal)


def test_statistic_counts_are_runtime_values_unless_the_source_has_a_design():
    assert chain().mix.runtime  # gaussian: statistics of any count
    linear = chain("source=linear", "model=linear_regression", "loop.samples=20", "source.dim=3")
    assert isinstance(linear.path, E.StatsPath) and not linear.mix.runtime  # the Gram matrix of a fixed design
    assert not chain("engine.path=samples").mix.runtime  # points have static shapes


def test_a_traced_n_real_takes_the_traced_mix_of_its_path():
    assert isinstance(chain(dynamic=frozenset({"n_real"})).mix, E.TracedStatsMix)
    assert isinstance(chain("engine.path=samples", dynamic=frozenset({"n_real"})).mix, E.TracedPointMix)


def test_held_out_real_data_is_drawn_per_replicate_only_for_metrics_that_score_it():
    assert chain().draw_heldout  # continuous: nll_real, kl_true from held-out draws
    assert not chain("source=zipf", "model=categorical").draw_heldout  # exact from the category probabilities
    assert not chain("source=linear", "model=linear_regression", "source.dim=3").draw_heldout  # coefficients
    text = chain("source=text", "model=ngram", "loop.samples=2048")
    assert not text.draw_heldout and not text.draw_det_real  # shared held-out segments


def test_curation_takes_the_curated_synthetic_part_and_refuses_a_traced_n_real():
    c = chain("curation=best_of", "curation.score=reward")
    assert isinstance(c.synthetic, E.Curated) and isinstance(c.path, E.PointPath)
    with pytest.raises(ValueError, match="n_real"):
        E.Chain(c.source, c.family, c.spec, c.metrics, False, frozenset({"n_real"}))
    with pytest.raises(ValueError, match="statistic path"):
        E.Chain(c.source, c.family, dataclasses.replace(c.spec, path="stats"), c.metrics, False)
