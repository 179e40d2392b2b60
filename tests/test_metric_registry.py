"""The metric registry: a metric is one registered function, its columns come from the registration, its
estimator from capabilities; docs and the README's metric tables agree with the registry."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import collapse
from collapse.metrics import compute, registry
from collapse.metrics import continuous as cm
from collapse.metrics.registry import MetricError, metric

ROOT = Path(__file__).resolve().parents[1]
def _with(*overrides: str, continuous: bool = True) -> tuple[str, ...]:
    """TINY (plus ``source.dim=2`` for a continuous source) with ``overrides`` replacing keys it sets."""
    base = (*TINY, "source.dim=2") if continuous else TINY
    keys = {o.split("=", 1)[0] for o in overrides}
    return (*(o for o in base if o.split("=", 1)[0] not in keys), *overrides)


TINY = ("quiet=true", "replicates=3", "generations=3", "loop.samples=30", "metrics.draws=0",
        "metrics.heldout=64", "metrics.eval_samples=32", "metrics.tail_directions=16")


@pytest.fixture
def register():
    """``register(fn, *args, **kw)``: ``metric(*args, **kw)(fn)``, removed again when the test ends."""
    added = []

    def add(fn, *args, **kw):
        added.append(metric(*args, **kw)(fn))
        return added[-1]

    yield add
    for fn in added:
        registry.unregister(fn)


def test_a_registered_function_becomes_a_column_with_its_values(register):
    def twice_var_ratio(ctx):
        """2 tr S / tr S0."""
        return {"twice_var_ratio": 2.0 * cm.var_ratio(ctx.moments[1], ctx.truth["cov"])}

    def fake_spread(ctx):  # sampled: thinned like precision / recall
        return jnp.mean(jnp.sum((ctx.fake - jnp.mean(ctx.fake, 0)) ** 2, -1))

    register(twice_var_ratio, "twice_var_ratio", kinds=("continuous",), label="twice the variance ratio", log=True)
    register(fake_spread, "fake_spread", kinds=("continuous",), cost="sampled", label="draw spread",
             unit="data units²")
    from collapse.metrics.table import METRICS, axis_label

    assert axis_label("fake_spread") == "draw spread (data units²)" and "twice_var_ratio" in METRICS
    res = collapse.simulate(*_with("metrics.sample_replicates=2", "metrics.sample_every=2"))
    df = res.metrics
    assert not [e for e in res.summary["events"] if e.get("metric") == "fake_spread"]  # NaN by design, not diverged
    cols = list(df.columns)
    assert cols.index("tail_mass") < cols.index("twice_var_ratio") < cols.index("precision")  # registration order
    assert cols[-1] == "fake_spread"  # sampled columns after the per-generation ones
    np.testing.assert_allclose(df["twice_var_ratio"], 2.0 * df["var_ratio"], rtol=1e-6)
    sampled = (df["replicate"] < 2) & df["generation"].isin([0, 2])
    assert df.loc[sampled, "fake_spread"].notna().all() and df.loc[~sampled, "fake_spread"].isna().all()
    assert (df.loc[sampled, "fake_spread"] > 0).all()
    assert "twice_var_ratio" not in collapse.simulate(*_with(
        "source=zipf", "model=categorical", "source.categories=10", continuous=False)).metrics.columns  # kinds=


def test_prepare_runs_once_per_replicate_and_is_read_back(register):
    """A sampled metric with prepare= reads ctx.prepared: here the held-out real set's mean, computed at generation
    0 and carried, so it is the same at every sampled generation and equals a recomputation from ctx.real."""
    def real_mean(ctx):
        return {"m": jnp.mean(ctx.real)}

    def prepared_vs_fresh(ctx):
        return {"prep_mean": ctx.prepared["m"], "prep_err": jnp.abs(ctx.prepared["m"] - jnp.mean(ctx.real))}

    register(prepared_vs_fresh, ("prep_mean", "prep_err"), kinds=("continuous",), cost="sampled",
             prepare=real_mean, info={"prep_mean": registry.MetricInfo("prepared mean"),
                                      "prep_err": registry.MetricInfo("prepared error")})
    df = collapse.simulate(*_with("metrics.sample_replicates=2", "metrics.sample_every=1")).metrics
    rows = df[df["replicate"] < 2]
    # (the same mean, up to float32 summation order: the two are computed in different compiled programs)
    assert rows["prep_mean"].notna().all() and (rows["prep_err"] <= 1e-6).all()
    assert rows.groupby("replicate")["prep_mean"].nunique().eq(1).all()  # one value per replicate
    assert rows.groupby("replicate")["prep_mean"].first().nunique() == 2  # replicates differ
    with pytest.raises(MetricError, match="prepare= is for cost='sampled'"):
        metric("bad_prep", prepare=real_mean, label="x")(lambda ctx: 0.0)


def test_undeclared_or_missing_names_fail_at_trace_time_with_a_clear_error(register):
    def extra(ctx):
        return {"declared_one": ctx.params["mean"][0], "not_declared": ctx.params["mean"][0]}

    register(extra, "declared_one", kinds=("continuous",))
    with pytest.raises(MetricError, match=r"extra.*declares \('declared_one',\).*undeclared \['not_declared'\]"):
        collapse.simulate(*_with("metrics.sample_based=false"))
    registry.unregister(extra)

    def short(ctx):
        return {"a_one": ctx.params["mean"][0]}

    register(short, ("a_one", "a_two"), kinds=("continuous",))
    with pytest.raises(MetricError, match=r"short.*missing \['a_two'\]"):
        collapse.simulate(*_with("metrics.sample_based=false"))


def test_two_metrics_for_one_column_and_bad_registrations_are_refused(register):
    register(lambda ctx: 0.0, "var_ratio", kinds=("continuous",))
    with pytest.raises(MetricError, match="column 'var_ratio' of a continuous run comes from two"):
        collapse.simulate(*_with("metrics.sample_based=false"))
    with pytest.raises(MetricError, match="unknown capability 'family.component'"):
        metric("x_metric", needs=("family.component",))
    with pytest.raises(MetricError, match="cost="):
        metric("x_metric", cost="sometimes")
    with pytest.raises(MetricError, match="already described"):
        metric("var_ratio", label="something else")(lambda ctx: 0.0)

    def again(ctx):
        return 1.0

    register(again, "again_metric", kinds=("continuous",), label="again")
    n = len(registry.REGISTRY)
    register(again, "again_metric", kinds=("discrete",), label="again")  # re-imported module: replaced
    assert len(registry.REGISTRY) == n and registry.REGISTRY[-1].kinds == ("discrete",)


def _source_family(*overrides):
    from collapse import config as C

    cfg = C.compose(list(overrides))
    source = C.build_source(cfg)
    return cfg, source, C.build_family(cfg, source)


def test_estimators_follow_capabilities_not_names():
    _, gauss, fam = _source_family("source=gaussian", "model=gaussian")
    _, t_src, _ = _source_family("source=student_t", "model=gaussian")
    plain = dataclasses.replace(fam, components=None, gaussian=False)
    est = {m.names[0]: e.name for m, e in registry.select(gauss, fam)}
    assert est["kl_true"] == "closed_form" and est["mean_err"] == "exact" and est["tail_mass"] == "directions"
    est = {m.names[0]: e.name for m, e in registry.select(t_src, fam)}
    assert est["kl_true"] == "monte_carlo" and est["tail_mass"] == "directions"
    est = {m.names[0]: e.name for m, e in registry.select(gauss, plain)}
    assert est["kl_true"] == "monte_carlo" and est["mean_err"] == "monte_carlo" and est["tail_mass"] == "monte_carlo"
    _, markov, ngram = _source_family("source=markov", "model=ngram")
    assert {m.names[0]: e.name for m, e in registry.select(markov, ngram)}["kl_true"] == "transitions"
    no_table = dataclasses.replace(ngram, transitions=None)
    assert {m.names[0]: e.name for m, e in registry.select(markov, no_table)}["kl_true"] == "monte_carlo"
    # the legacy name tuples are what the registry gives those runs
    assert compute.build_metrics(gauss, fam, _source_family()[0].metrics, 1.0, jnp.float32).param_names == \
        compute.CONTINUOUS
    for path in (ROOT / "collapse" / "metrics").glob("*.py"):  # no metric picks an estimator by a name
        assert not re.search(r"(source|family|src|fam)\.name\b", path.read_text()), path


def test_a_family_without_components_gets_monte_carlo_moments(monkeypatch):
    """dataclasses.replace(gaussian family, components=None, gaussian=False): mean_err / var_ratio /
    logdet_ratio / frechet from the moments of metrics.tail_samples draws, tail_mass plain Monte Carlo; both within
    5 standard errors of the exact values of the same fitted models (same seed, same chains)."""
    from collapse import config as C

    over = _with("replicates=4", "metrics.sample_based=false", "metrics.tail_samples=20000",
                 "metrics.tail_directions=1024")
    exact = collapse.simulate(*over).metrics
    build = C.build_family
    monkeypatch.setattr(C, "build_family",
                        lambda cfg, source: dataclasses.replace(build(cfg, source), components=None, gaussian=False))
    mc = collapse.simulate(*over).metrics
    assert list(mc.columns) == list(exact.columns)
    n, d, tr0, alpha = 20000, 2, 2.0, 0.01  # the default source: N(0, I_2)
    tr = exact["var_ratio"] * tr0
    dm = 5 * np.sqrt(tr / n)  # ||mu_hat - mu|| (triangle inequality on ||mu - mu0||)
    assert (np.abs(mc["mean_err"] - exact["mean_err"]) <= (2 * np.sqrt(exact["mean_err"]) + dm) * dm).all()
    assert (np.abs(mc["var_ratio"] - exact["var_ratio"]) <= 5 * np.sqrt(2 / n) * exact["var_ratio"]).all()
    assert (np.abs(mc["logdet_ratio"] - exact["logdet_ratio"]) <= 5 * np.sqrt(2 * d / n)).all()
    dw = 5 * np.sqrt((1 + (d + 1) / 4) * tr / n)  # W2 between the exact and the sampled Gaussian fit
    assert (np.abs(mc["frechet"] - exact["frechet"]) <= (2 * np.sqrt(exact["frechet"]) + dw) * dw).all()
    p = np.clip(exact["tail_mass"] * alpha, 1e-4, 1)
    se = np.sqrt(p * (1 - p) / n) / alpha
    assert (np.abs(mc["tail_mass"] - exact["tail_mass"]) <= 5 * se + 0.01).all()  # + the directions' own error
    assert np.isfinite(mc["kl_true"]).all() and (mc["nll_real"] == exact["nll_real"]).all()
    assert not mc[["mean_err", "var_ratio", "tail_mass"]].equals(exact[["mean_err", "var_ratio", "tail_mass"]])


def _readme_table_names() -> list[set[str]]:
    """Backticked names of the first cell of each ``| column | definition |`` table of the README."""
    tables, current = [], None
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| column | definition |"):
            current = set()
            tables.append(current)
        elif current is not None and line.startswith("|"):
            cell = line.split("|")[1]
            for name in re.findall(r"`([^`]+)`", cell):
                base, *alts = name.split("/")  # ppl_gen0_q50/q95/q99
                current.add(base)
                current.update(base.rsplit("_", 1)[0] + "_" + a for a in alts)
            m = re.search(r"`(\w+)_(\d)`\.\.`\w+_(\d)`", cell)  # distinct_1..distinct_4
            if m:
                current.update(f"{m.group(1)}_{i}" for i in range(int(m.group(2)), int(m.group(3)) + 1))
        elif not line.startswith("|"):
            current = None
    return tables


def test_readme_metric_tables_match_the_registry():
    """The README's column tables (continuous, text, neural runs) list exactly the registered columns of those
    runs, and every other registered column is named in the README."""
    tables = _readme_table_names()
    assert len(tables) == 3, tables
    assert tables[0] == set(compute.CONTINUOUS + compute.SAMPLE_BASED)
    assert tables[1] == set(compute.TEXT)
    assert tables[2] == set(compute.NEURAL)
    text = (ROOT / "README.md").read_text()
    for name in (*compute.DISCRETE, *compute.SUPERVISED, *registry.INFO):
        assert f"`{name}`" in text or name.startswith(("distinct_", "ppl_gen0_")), name


def test_docs_metric_table_lists_every_registration(register):
    from collapse.metrics.table import markdown

    doc = (ROOT / "docs" / "metrics.md").read_text()
    assert doc == markdown(), "docs/metrics.md is stale: python -m collapse.metrics.table > docs/metrics.md"
    for m in registry.REGISTRY:
        assert f"`{m.where.split(':')[-1]}`" in doc
    register(lambda ctx: 0.0, "plugin_zero", kinds=("continuous",), label="zero", about="always 0")
    assert markdown() == doc and "`plugin_zero` | zero" in markdown(plugins=True)  # plug-ins stay out of the docs


def test_headline_lists_name_registered_metrics_of_their_kind():
    """The CLI's and reports' headline order (metrics.table.HEADLINE) cannot name a metric the registry does not
    compute for that source kind."""
    from collapse.metrics import registry, table

    registry.ensure_builtin()
    for kind, names in table.HEADLINE.items():
        for name in names:
            owners = [m for m in registry.REGISTRY if name in m.names and (m.kinds is None or kind in m.kinds)]
            assert owners, f"HEADLINE[{kind!r}] names {name!r}, which no registered metric computes for {kind} runs"
