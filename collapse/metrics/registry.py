"""The metric registry: every metric collapse reports is one registered function, in one place.

A registration says what the function computes (its column name(s) in ``metrics.parquet``), which runs it
applies to (source kinds and the capabilities it needs from the source and the family), how often it runs
(``cost``), which estimators it may use (and the capabilities each needs), and how figures and docs describe
each column (label, unit, log axis, precision guard, one-line definition). The columns of a run are exactly
the names of the registered metrics that apply to it, in registration order; a function that returns a name
it did not declare, or misses one it did, fails at trace time with :class:`MetricError`.

Writing a metric (in collapse, or in your own module imported before the run is built)::

    import jax.numpy as jnp
    from collapse.metrics.registry import metric

    @metric("mean_norm", kinds=("continuous",), label="norm of the model mean", unit="data units",
            about="||mu|| of the fitted model's mean")
    def mean_norm(ctx):
        mu, cov = ctx.moments
        return {"mean_norm": jnp.sqrt(jnp.sum(mu ** 2))}

The function takes one argument, a :class:`MetricContext` ``ctx`` (one per replicate, generation and call,
inside the compiled program: arrays are traced, shapes and Python values are static) and returns a dict
``{name: scalar array}`` with exactly the declared names (a one-name metric may return the scalar itself);
integer or bool values are cast to the run's float dtype. Several names from one function are declared as a
tuple, ``@metric(("a", "b"), info={"a": MetricInfo(...), "b": MetricInfo(...)})``. No Python branching on
traced values; branch on capabilities (:meth:`MetricContext.has`) or on ``ctx.estimator``. A second
example, with estimators and the thinned cost::

    from collapse.metrics.registry import Estimator, metric

    @metric("draw_nll", kinds=("continuous",), without=("family.trains",), cost="sampled",
            estimators=(Estimator("exact", ("source.density",), "mean -log p_true of the model draws"),),
            label="NLL of model draws under the truth", unit="nats")
    def draw_nll(ctx):
        return -jnp.mean(ctx.source.log_prob(ctx.truth, ctx.fake))

What the context offers (details: :class:`MetricContext`)
  inputs:  ``key`` (this call's PRNG key, also used by the shared draws below; ``ctx.fold("my_tag")`` gives an
           independent one), ``params`` (the fitted model), ``truth`` (the replicate's truth dict merged with
           the source's shared data), ``heldout`` (held-out real data), ``gen0`` (generation-0 params; only
           with ``gen0=True``), ``source``, ``family`` (the run's records), ``cfg`` (the ``metrics`` config
           node), ``dtype``, ``scale`` / ``draw_scale`` (the run's / the row's ``sampling.scale``),
           ``estimator`` (the estimator chosen for this metric, "" if it declares none);
  shared:  computed once per call by whichever metric reads them first (same arrays for every metric):
           ``components``, ``moments``, ``moments_exact``, ``log_model``, ``log_true``, ``tail_draws``,
           ``real``, ``fake``, ``features``, ``predicted`` (continuous and image runs), ``tokens``, ``valid``
           (text runs).

Applicability (decided when the run is built, from :attr:`Source.capabilities` / :attr:`Family.capabilities`,
never from a source's or family's name): ``kinds`` (source kinds, None = any), ``needs`` (capabilities all
required, written ``"source.<cap>"`` / ``"family.<cap>"``), ``without`` (any of these excludes the metric),
``estimators`` (the first whose needs hold is used; none holding excludes the metric), and ``cost``:
``"every"`` runs at every kept generation from the fitted params, ``"sampled"`` only at the thinned
generations and replicates of ``metrics.sample_every`` / ``metrics.sample_replicates`` (NaN elsewhere; not at
all with ``metrics.sample_based=false``). Two metrics that apply to one run and share a column name are an
error. Note that ``kinds=("continuous",)`` also matches neural families (vae, diffusion) on 2-D toy sources:
add ``without=("family.trains",)`` for classical families only. In neural runs every metric is NaN from the
generation the params stop being finite. Columns follow registration order ("every" ones first, then
"sampled"); a plug-in's columns come after collapse's own. :func:`unregister` removes a registration
(tests, notebooks); registering a function of the same module and qualified name again replaces it.
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

SOURCE_CAPS = frozenset({"density", "gaussian", "elliptical", "stats_sampler", "covariates", "finite", "labels",
                         "modes", "transitions", "answers"})  # Source.capabilities
FAMILY_CAPS = frozenset({"log_prob", "components", "probs", "coef", "stats", "stats_sampler", "gaussian", "trains",
                         "transitions", "answer_probs", "decode"})  # Family.capabilities
COSTS = ("every", "sampled")
GUARDS = ("", "positive", "finite")


class MetricError(ValueError):
    """A metric registered or computed inconsistently (declared names, applicability, descriptions)."""


@dataclass(frozen=True)
class MetricInfo:
    """How figures and docs describe a column: ``label`` (axis text), ``unit`` ("" = dimensionless), ``log``
    (a multiplicative quantity: log axis), ``guard`` (continuous float32 runs: ``positive`` = strictly positive
    and finite in exact arithmetic, ``finite`` = finite; see :mod:`collapse.precision_guard`), ``about`` (one
    line for docs/metrics.md)."""

    label: str
    unit: str = ""
    log: bool = False
    guard: str = ""
    about: str = ""


@dataclass(frozen=True)
class Estimator:
    """One way of computing a metric: ``name`` (what ``ctx.estimator`` says), the capabilities it ``needs``
    (``"source.<cap>"`` / ``"family.<cap>"``, all required) and one line ``about`` it for the docs."""

    name: str
    needs: tuple[str, ...] = ()
    about: str = ""


@dataclass(frozen=True)
class Metric:
    """A registered metric function (see the module docstring for the fields)."""

    names: tuple[str, ...]
    fn: Callable[["MetricContext"], Any]
    kinds: Optional[tuple[str, ...]] = None
    needs: tuple[str, ...] = ()
    without: tuple[str, ...] = ()
    estimators: tuple[Estimator, ...] = ()
    cost: str = "every"
    gen0: bool = False
    where: str = ""  # module:qualname of the function, for messages
    prepare: Optional[Callable[["MetricContext"], Any]] = None  # per-replicate constants (``ctx.prepared``)

    def estimator_for(self, scaps: frozenset, fcaps: frozenset) -> Optional[Estimator]:
        """The first estimator whose needs hold (a metric without declared estimators has one, unnamed)."""
        if not self.estimators:
            return Estimator("")
        return next((e for e in self.estimators if _holds(e.needs, scaps, fcaps)), None)

    def applies(self, kind: str, scaps: frozenset, fcaps: frozenset, sample_based: bool = True) -> bool:
        """Whether a run of source kind ``kind`` with these source / family capabilities gets this metric."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.cost == "sampled" and not sample_based:
            return False
        if not _holds(self.needs, scaps, fcaps):
            return False
        if any(_holds((c,), scaps, fcaps) for c in self.without):
            return False
        return self.estimator_for(scaps, fcaps) is not None


REGISTRY: list[Metric] = []  # registration order = column order
INFO: dict[str, MetricInfo] = {}  # column name -> description (also columns made elsewhere, e.g. curation)
_INFO_OWNER: dict[str, str] = {}  # column name -> ``where`` of the registration that described it


def _split_cap(cap: str) -> tuple[str, str]:
    side, _, name = cap.partition(".")
    known = {"source": SOURCE_CAPS, "family": FAMILY_CAPS}.get(side)
    if known is None or name not in known:
        raise MetricError(f"unknown capability {cap!r}: write 'source.<cap>' with <cap> in {sorted(SOURCE_CAPS)} "
                          f"or 'family.<cap>' with <cap> in {sorted(FAMILY_CAPS)}")
    return side, name


def _holds(caps: Iterable[str], scaps: frozenset, fcaps: frozenset) -> bool:
    for cap in caps:
        side, name = _split_cap(cap)
        if name not in (scaps if side == "source" else fcaps):
            return False
    return True


def _as_estimator(e) -> Estimator:
    if isinstance(e, Estimator):
        return e
    name, needs, *about = e
    return Estimator(name, tuple(needs), about[0] if about else "")


def describe(name: str, label: str, unit: str = "", log: bool = False, guard: str = "", about: str = "",
             *, owner: str = "") -> MetricInfo:
    """Register how column ``name`` is described (figures, docs, precision guard) without a function: for
    columns made outside the registry (curation's ``accept_rate``, ``reward_mean``). Returns the entry."""
    return _set_info(name, MetricInfo(label, unit, log, guard, about), owner or f"describe({name!r})")


def described_by(name: str) -> str:
    """``module:qualname`` of the registration that described column ``name`` ("" if none did)."""
    return _INFO_OWNER.get(name, "")


def _set_info(name: str, info: MetricInfo, owner: str) -> MetricInfo:
    if info.guard not in GUARDS:
        raise MetricError(f"metric {name!r}: guard={info.guard!r}, expected one of {GUARDS}")
    old = INFO.get(name)
    if old is not None and old != info and _INFO_OWNER.get(name) != owner:
        raise MetricError(f"metric {name!r} is already described by {_INFO_OWNER.get(name)} as {old}; "
                          f"{owner} describes it differently ({info}). Describe a column once (omit label=...)")
    if old is None or _INFO_OWNER.get(name) == owner:
        INFO[name] = info
        _INFO_OWNER[name] = owner
    return info


def metric(names, *, kinds: Optional[Iterable[str]] = None, needs: Iterable[str] = (), without: Iterable[str] = (),
           estimators: Iterable = (), cost: str = "every", gen0: bool = False, label: Optional[str] = None,
           unit: str = "", log: bool = False, guard: str = "", about: str = "",
           info: Optional[dict[str, MetricInfo]] = None, prepare: Optional[Callable] = None) -> Callable:
    """Decorator registering ``fn(ctx) -> {name: scalar}`` as the metric(s) ``names`` (a str or a tuple of str).

    kinds:      source kinds the metric applies to ("continuous", "discrete", "supervised", "text", "image"),
                None = every kind.
    needs:      capabilities all required, ``"source.<cap>"`` / ``"family.<cap>"`` (:data:`SOURCE_CAPS`,
                :data:`FAMILY_CAPS`); ``without``: capabilities any of which excludes the metric.
    estimators: ``Estimator(name, needs, about)`` or ``(name, needs[, about])`` in order of preference: the first
                whose needs hold is the run's (``ctx.estimator``); none holding excludes the metric.
    cost:       ``"every"`` (every kept generation, all replicates) or ``"sampled"`` (every
                ``metrics.sample_every`` kept generations, the first ``metrics.sample_replicates`` replicates,
                NaN elsewhere; off with ``metrics.sample_based=false``).
    gen0:       the function reads ``ctx.gen0``, the generation-0 params (``cost="every"`` only).
    prepare:    ``prepare(ctx) -> pytree``, computed once per replicate at generation 0 from what does not change
                between generations (``ctx.truth``, ``ctx.heldout``, ``ctx.real``, ``ctx.cfg``; no params, no
                key) and kept in the chain's state; the function reads it back as ``ctx.prepared``
                (``cost="sampled"`` only: the real side of the sample metrics).
    label, unit, log, guard, about: the column's description (one-name metrics), or ``info={name:
                MetricInfo(...)}`` for several names. A name already described (e.g. ``kl_true``, shared by
                several source kinds) needs no description again.

    Registering the same function (same module and qualified name) again replaces the earlier registration.
    Returns ``fn`` unchanged, with the record as ``fn.metric``.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or not all(isinstance(n, str) and n.isidentifier() and not n.startswith("_") for n in names):
        raise MetricError(f"metric names must be identifiers not starting with '_', got {names!r}")
    if len(set(names)) != len(names):
        raise MetricError(f"metric names repeat: {names!r}")
    if cost not in COSTS:
        raise MetricError(f"metric {names}: cost={cost!r}, expected one of {COSTS}")
    if prepare is not None and cost != "sampled":
        raise MetricError(f"metric {names}: prepare= is for cost='sampled' metrics")
    if gen0 and cost != "every":
        raise MetricError(f"metric {names}: gen0=True needs cost='every' (sampled metrics get no gen-0 params)")
    ests = tuple(_as_estimator(e) for e in estimators)
    for cap in (*needs, *without, *(c for e in ests for c in e.needs)):
        _split_cap(cap)
    infos = dict(info or {})
    if label is not None:
        if len(names) != 1:
            raise MetricError(f"metric {names}: label=... describes one name; use info={{name: MetricInfo(...)}}")
        infos[names[0]] = MetricInfo(label, unit, log, guard, about)
    extra = set(infos) - set(names)
    if extra:
        raise MetricError(f"metric {names}: info for undeclared names {sorted(extra)}")

    def register(fn: Callable) -> Callable:
        where = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
        rec = Metric(names, fn, None if kinds is None else tuple(kinds), tuple(needs), tuple(without), ests, cost,
                     gen0, where, prepare)
        for n, i in infos.items():
            _set_info(n, i, where)
        for i, old in enumerate(REGISTRY):
            if old.where == where:
                REGISTRY[i] = rec
                break
        else:
            REGISTRY.append(rec)
        try:
            fn.metric = rec
        except AttributeError:  # a builtin or a callable object without a __dict__
            pass
        return fn

    return register


def unregister(target) -> None:
    """Remove a registration (the decorated function, or its :class:`Metric`) and the descriptions it added."""
    rec = getattr(target, "metric", target)
    REGISTRY[:] = [m for m in REGISTRY if m is not rec and m.where != rec.where]
    for name in [n for n, owner in _INFO_OWNER.items() if owner == rec.where]:
        del INFO[name], _INFO_OWNER[name]


def select(source, family, mcfg=None) -> list[tuple[Metric, Estimator]]:
    """The registered metrics of a run, in registration order, each with its estimator. Raises
    :class:`MetricError` when two of them would fill one column."""
    ensure_builtin()
    scaps, fcaps = source.capabilities, family.capabilities
    sample_based = True if mcfg is None else bool(mcfg.get("sample_based", True))
    chosen, owner = [], {}
    for m in REGISTRY:
        if not m.applies(source.kind, scaps, fcaps, sample_based):
            continue
        for n in m.names:
            if n in owner:
                raise MetricError(f"column {n!r} of a {source.kind} run comes from two registered metrics, "
                                  f"{owner[n]} and {m.where}: narrow one with kinds=, needs= or without= so "
                                  "that only one applies")
            owner[n] = m.where
        chosen.append((m, m.estimator_for(scaps, fcaps)))
    return chosen


def sampled_names() -> frozenset[str]:
    """Every column registered with ``cost="sampled"`` (NaN outside the thinned generations and replicates by
    design, never a sign of divergence), plug-ins included."""
    ensure_builtin()
    return frozenset(n for m in REGISTRY if m.cost == "sampled" for n in m.names)


def names_of(chosen: Iterable[tuple[Metric, Estimator]], cost: Optional[str] = None) -> tuple[str, ...]:
    """Column names of selected metrics (of one ``cost`` class, or all), in order."""
    return tuple(n for m, _ in chosen if cost is None or m.cost == cost for n in m.names)


def evaluate(chosen: Iterable[tuple[Metric, Estimator]], ctx: "MetricContext") -> dict:
    """Run the selected metric functions on one context, in order; check (at trace time) that each returns
    exactly its declared names, as scalars. Non-float values are cast to ``ctx.dtype``."""
    import jax.numpy as jnp

    out = {}
    prepared = ctx.prepared_all or {}
    for m, est in chosen:
        ctx.estimator = est.name
        ctx.prepared = prepared.get(m.where)
        got = m.fn(ctx)
        if not isinstance(got, dict):
            if len(m.names) != 1:
                raise MetricError(f"metric function {m.where} returned {type(got).__name__}; it declares "
                                  f"{m.names} and must return a dict with exactly those keys")
            got = {m.names[0]: got}
        missing = [n for n in m.names if n not in got]
        undeclared = [n for n in got if n not in m.names]
        if missing or undeclared:
            raise MetricError(f"metric function {m.where} declares {m.names} but returned {tuple(got)}: "
                              + "; ".join(s for s in (f"missing {missing}" if missing else "",
                                                      f"undeclared {undeclared} (add them to names=)"
                                                      if undeclared else "") if s))
        for n in m.names:
            v = jnp.asarray(got[n])
            if v.ndim != 0:
                raise MetricError(f"metric function {m.where}: {n!r} has shape {v.shape}, expected a scalar "
                                  "(one value per replicate and generation)")
            if not jnp.issubdtype(v.dtype, jnp.inexact):
                v = v.astype(ctx.dtype)
            out[n] = v
    ctx.estimator, ctx.prepared = "", None
    return out


def prepare(chosen: Iterable[tuple[Metric, Estimator]], ctx: "MetricContext") -> dict:
    """{metric's where: its ``prepare(ctx)``} of the selected metrics that declare one (see :func:`metric`)."""
    out = {}
    for m, est in chosen:
        if m.prepare is not None:
            ctx.estimator = est.name
            out[m.where] = m.prepare(ctx)
    ctx.estimator = ""
    return out


_BUILTIN_LOADED = False


def ensure_builtin() -> None:
    """Import :mod:`collapse.metrics.builtin` (registers collapse's own metrics) once."""
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED = True
        import collapse.metrics.builtin  # noqa: F401


class MetricContext:
    """What a metric function sees: one replicate, one generation, one call (``param_fn`` or ``sample_fn``).

    Fields
      key:      PRNG key of this call (the shared draws below use it; :meth:`fold` gives independent keys).
      params:   the fitted model's params (the family's pytree).
      truth:    the replicate's truth dict merged with the source's shared data (``mean``, ``cov``,
                ``tail_q``, ``probs``, ``w``, ``classifier``, ... see :mod:`collapse.sources.base`), plus
                ``sampling_scale`` (the row's sampling scale).
      heldout:  held-out real data ((H, d) points, (H, L) tokens, images), or None.
      gen0:     generation-0 params (metrics registered with ``gen0=True``; else None).
      source, family: the run's :class:`Source` and :class:`Family` records (``.capabilities``, ``.dim``, ...).
      cfg:      the ``metrics`` config node (``eval_samples``, ``knn_k``, ``dc_k``, ``tail_level``,
                ``tail_samples``, ``tail_directions``, ``repetition_n``, ...).
      dtype:    the run's float dtype; ``scale``: the run's ``sampling.scale`` (:attr:`draw_scale`: the row's).
      estimator: name of the estimator chosen for the metric being computed ("" when it declares none).
      prepared: the metric's own ``prepare(ctx)`` value of this replicate (metrics registered with prepare=).

    Shared quantities (cached: computed once per call, by whichever metric reads them first)
      components: (weights (K,), means (K, d), covs (K, d, d)) = family.components(params)  [family.components]
      moments:    (mu (d,), S (d, d)) of the model at scale 1: exact mixture moments from ``components`` when
                  the family has them, else the sample mean and unbiased covariance of ``tail_draws``.
      moments_exact: whether ``moments`` are exact.
      log_model:  family.log_prob(params, heldout), (H,) nats  [family.log_prob]
      log_true:   source.log_prob(truth, heldout), (H,) nats  [source.density]
      tail_draws: ``metrics.tail_samples`` model draws at scale 1 (key ``key``).
      real:       heldout[:metrics.eval_samples].
      fake:       ``metrics.eval_samples`` model draws at :attr:`draw_scale` (key ``key``; continuous/image).
      features:   (features(real), features(fake)) in the source's classifier feature space
                  [source.labels], else (real, fake).
      predicted:  the classifier's labels of ``fake`` [source.labels].
      tokens:     text: ``metrics.eval_samples`` generated segments, continuing source prompts where the
                  source has covariates (keys split(key)), at scale 1.
      valid:      text: (E, L) bool, positions after the prompt.
    """

    def __init__(self, key, params, truth: dict, heldout, *, source, family, cfg, scale: float, dtype,
                 gen0=None, prepared=None):
        self.key, self.params, self.truth, self.heldout, self.gen0 = key, params, truth, heldout, gen0
        self.source, self.family, self.cfg, self.scale, self.dtype = source, family, cfg, scale, dtype
        self.estimator = ""
        self.prepared_all, self.prepared = prepared, None

    # ----- helpers ---------------------------------------------------------------------------------
    def has(self, *caps: str) -> bool:
        """Whether the run has all these capabilities (``"source.<cap>"`` / ``"family.<cap>"``)."""
        return _holds(caps, self.source.capabilities, self.family.capabilities)

    def fold(self, tag: str):
        """A key independent of ``key``'s shared draws: fold_in(key, crc32(tag) mod 2^31)."""
        import jax

        return jax.random.fold_in(self.key, zlib.crc32(tag.encode()) & 0x7FFFFFFF)

    @property
    def draw_scale(self):
        """Sampling scale of ``fake``: the row's own (a vectorised sweep over ``sampling.scale``) or the run's."""
        return self.truth.get("sampling_scale", self.scale)

    @property
    def eval_samples(self) -> int:
        return int(self.cfg["eval_samples"])

    # ----- shared quantities -----------------------------------------------------------------------
    @functools.cached_property
    def components(self):
        return self.family.components(self.params)

    @property
    def moments_exact(self) -> bool:
        return self.family.components is not None

    @functools.cached_property
    def moments(self):
        if self.moments_exact:
            from collapse.metrics.continuous import mixture_moments

            return mixture_moments(*self.components)
        from collapse.metrics.images import sample_moments

        return sample_moments(self.tail_draws)

    @functools.cached_property
    def log_model(self):
        return self.family.log_prob(self.params, self.heldout)

    @functools.cached_property
    def log_true(self):
        return self.source.log_prob(self.truth, self.heldout)

    @functools.cached_property
    def tail_draws(self):
        return self.family.sample(self.key, self.params, int(self.cfg["tail_samples"]), 1.0, None)

    @functools.cached_property
    def real(self):
        return self.heldout[:self.eval_samples]

    @functools.cached_property
    def fake(self):
        return self.family.sample(self.key, self.params, self.eval_samples, self.draw_scale, None)

    @functools.cached_property
    def features(self):
        if not self.has("source.labels"):
            return self.real, self.fake
        from collapse.metrics.features import features

        clf = self.truth["classifier"]
        fake, real = self.fake, self.real
        return features(clf, real), features(clf, fake)

    @functools.cached_property
    def predicted(self):
        from collapse.metrics.features import predict

        return predict(self.truth["classifier"], self.fake)

    @functools.cached_property
    def tokens(self):
        import jax

        k_cov, k_syn = jax.random.split(self.key)
        n = self.eval_samples
        cov = self.source.covariates
        prompts = cov(k_cov, self.truth, n) if cov is not None else None
        return self.family.sample(k_syn, self.params, n, 1.0, prompts)

    @functools.cached_property
    def valid(self):
        import jax.numpy as jnp

        prompt = int((self.source.info or {}).get("prompt", 0))
        t = self.tokens
        return jnp.broadcast_to(jnp.arange(t.shape[1]) >= prompt, t.shape)
