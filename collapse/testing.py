"""Contract checks for model families, for plug-in authors: does a :class:`~collapse.families.base.Family` do what
the engine (:mod:`collapse.engine`) assumes, on a given :class:`~collapse.sources.base.Source`?

    from collapse.testing import assert_family_contract
    assert_family_contract(my_family, my_source, n=64)   # raises AssertionError listing every failure

:func:`check_family` returns a :class:`ContractReport` instead (every check passed, failed or skipped, with the
reason). Checks that do not apply to the family (by its capabilities) or to the source kind are skipped. Every
statistical check uses fixed seeds and a tolerance of ``z`` standard errors (estimated from the same draws), so a
correct family fails it only with a probability of about 1e-6 (and, the seeds being fixed, always or never); exact identities use a
floating-point tolerance of the data dtype (:func:`float_tol`). Two compilations of a trained family's fit (jit
or not, vmap or not) are compared with the looser :data:`TRAINED_TOL`: their rounding differs, and gradient steps
amplify it (Adam turns a mathematically zero gradient made of float noise into a full step).

Checks (names as they appear in the report)
  layout           ``sample`` gives n rows in the source's batch layout (same tree, shapes and dtypes as a real
                   batch: continuous/image (n, d) float, discrete (n,) int, supervised {"x", "y"} with x the given
                   covariates, text (n, L) int tokens continuing the prompt); values finite / valid ids / images in
                   [0, 1]; ``log_prob`` (n,) float (text: (n,) or (n, L), NaN only in whole columns).
  init_structure   ``init(truth)`` has the tree structure, leaf shapes and dtypes of ``fit``'s output, and a fit warm
                   started from a fit (``prev``) has them too (the ``lax.scan`` carry).
  mask_garbage     masked rows interleaved with the valid ones: changing their contents changes nothing.
  mask_padding     valid rows followed by masked padding (the engine's pool layout) give the model of the valid rows
                   alone (params compared when their shapes agree, else log_prob / draws of the two models).
  jit              ``jax.jit`` of fit, of sample (with a traced scale, as the engine passes it) and of log_prob equals
                   the plain (unjitted) call.
  vmap             ``jax.jit(jax.vmap(...))`` of fit -> sample -> log_prob over two keys and batches equals each
                   replicate alone.
  scan             a jitted 2-step ``lax.scan`` of sample -> fit(prev) (the generation loop) equals the same steps as
                   a Python loop of single jitted calls.
  determinism      the same key gives the same params and the same draws, also from a second, independent trace.
  key_dependence   different keys give different draws (catches a fixed key inside ``sample``).
  gibbs_real       E_real[log p_true - log p_model] >= 0 (a KL divergence) on real draws: log_prob is not too
                   high anywhere it matters (holds for any normalised density, also for a lower bound such as an ELBO).
  gibbs_own        E_model[log p_model - log p_true] >= 0 on the model's own draws: log_prob is not too low and
                   ``sample`` draws from it (not for trained families, whose log_prob may be a bound).
  normalised       discrete: sum_k exp(log_prob(k)) = 1; text with per-position scores: the last position's
                   conditional sums to 1 over the vocabulary.
  sample_law       discrete: frequencies of the model's draws match exp(log_prob) (chi-square).
  components       weights sum to 1, covariances symmetric, K = 1 for ``gaussian``; log_prob equals the mixture
                   density of the components.
  probs            ``probs`` is a distribution equal to exp(log_prob) of every category.
  transitions      rows of ``transitions`` are distributions and agree with log_prob on the model's draws.
  coef             the model's draws have E[y - x . coef | x] = 0.
  scale            ``sampling.scale`` = s: continuous with components: mean and covariance of draws equal the
                   mixture's with every covariance times s (s = 1, 2, 0.5); discrete: frequencies follow p^(1/s)
                   renormalised; supervised: residual variance times s.
  stats            ``fit(k, b, m, p) == fit_stats(k, stats(b, m), p)`` (with masked rows, prev None and warm).
  merge_stats      ``merge_stats(stats(a), stats(b)) == stats(a + b)``.
  stats_sampler    ``sample_stats`` draws the statistics of n model draws: mean of each entry over replicates equals
                   that of ``stats(sample(...))`` (two-sample z test).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from collapse.families.base import Family
from collapse.sources.base import Source

tree_map = jax.tree_util.tree_map

CHECKS = ("layout", "init_structure", "mask_garbage", "mask_padding", "jit", "vmap", "scan", "determinism",
          "key_dependence", "gibbs_real", "gibbs_own", "normalised", "sample_law", "components", "probs",
          "transitions", "coef", "scale", "stats", "merge_stats", "stats_sampler")


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``status`` is "pass", "fail" or "skip"; ``detail`` says why (failures, skips)."""

    name: str
    status: str
    detail: str = ""


@dataclass
class ContractReport:
    """Every check run on one (family, source) pair."""

    family: str
    source: str
    checks: list[Check] = field(default_factory=list)

    def _named(self, status: str) -> list[Check]:
        return [c for c in self.checks if c.status == status]

    @property
    def failures(self) -> list[str]:
        """``"<check>: <what went wrong>"`` for every failed check."""
        return [f"{c.name}: {c.detail}" for c in self._named("fail")]

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self._named("fail")]

    @property
    def passed(self) -> list[str]:
        return [c.name for c in self._named("pass")]

    @property
    def skipped(self) -> dict[str, str]:
        """{check: reason} of the checks that do not apply."""
        return {c.name: c.detail for c in self._named("skip")}

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        lines = [f"contract of model={self.family} on source={self.source}: {len(self.passed)} passed, "
                 f"{len(self.failed)} failed, {len(self.skipped)} skipped"]
        for c in self.checks:
            lines.append(f"  {c.status.upper():4s} {c.name}" + (f": {c.detail}" if c.detail else ""))
        return "\n".join(lines)


class _Skip(Exception):
    """Raised by a check that does not apply (the message is the reason)."""


TRAINED_TOL = 1e-2  # relative tolerance between two compilations of a trained family's fit (see _Ctx.loose)


def float_tol(dtype) -> float:
    """Relative tolerance of exact identities in ``dtype``: 1e-4 for float32 (~800 ulp), 1e-9 for float64."""
    return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-4


# ----------------------------------------------------------------------------------------- tree comparison


def _path(p) -> str:
    return jax.tree_util.keystr(p) or "<root>"


def structure_diff(a, b, label_a: str = "a", label_b: str = "b") -> list[str]:
    """Differences between two trees of arrays (or ShapeDtypeStructs): tree structure, leaf shapes, dtypes."""
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if ta != tb:
        pa = {_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(a)[0]}
        pb = {_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(b)[0]}
        only_a, only_b = sorted(pa - pb), sorted(pb - pa)
        msg = f"tree structure differs ({label_a}: {ta}; {label_b}: {tb})"
        if only_a or only_b:
            msg = (f"tree structure differs: only in {label_a}: {only_a[:6] or '-'}; only in {label_b}: "
                   f"{only_b[:6] or '-'}")
        return [msg]
    out = []
    for (p, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_leaves(b)):
        sx, sy = (tuple(np.shape(x)), jnp.result_type(x)), (tuple(np.shape(y)), jnp.result_type(y))
        if sx != sy:
            out.append(f"{_path(p)}: {label_a} {sx[0]} {sx[1]} vs {label_b} {sy[0]} {sy[1]}")
    return out


def tree_close(a, b, rtol: float, label: str = "") -> list[str]:
    """Leaf-wise ``|a - b| <= rtol * max(1, max|b|)`` (float leaves; non-finite entries must agree exactly),
    exact equality for integer and bool leaves. Returns the differences (empty: close)."""
    diff = structure_diff(a, b)
    if diff:
        return [f"{label}{d}" for d in diff]
    out = []
    for (p, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind == "V" or y.dtype.kind == "V":  # typed PRNG keys
            x, y = np.asarray(jax.random.key_data(x)), np.asarray(jax.random.key_data(y))
        if x.dtype.kind not in "fc":
            bad = int(np.sum(x != y))
            if bad:
                out.append(f"{label}{_path(p)}: {bad} of {x.size} entries differ")
            continue
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        fin_x, fin_y = np.isfinite(x64), np.isfinite(y64)
        nonfinite_ok = np.all(fin_x == fin_y) and np.array_equal(x64[~fin_x], y64[~fin_y], equal_nan=True)
        if not nonfinite_ok:
            out.append(f"{label}{_path(p)}: non-finite entries differ ({int(np.sum(~fin_x))} vs {int(np.sum(~fin_y))})")
            continue
        if not fin_x.any():
            continue
        scale = max(1.0, float(np.max(np.abs(y64[fin_y]))))
        err = float(np.max(np.abs(x64[fin_x] - y64[fin_y])))
        if err > rtol * scale:
            out.append(f"{label}{_path(p)}: max |difference| {err:.3g} > {rtol:g} x {scale:.3g}")
    return out


def _dtype_of(tree) -> Any:
    floats = [jnp.result_type(x) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.result_type(x),
                                                                                          jnp.floating)]
    return floats[0] if floats else jnp.float32


def _rows(tree) -> int:
    return int(np.shape(jax.tree_util.tree_leaves(tree)[0])[0])


def _concat(a, b):
    return tree_map(lambda x, y: jnp.concatenate([x, y], 0), a, b)


def _take(tree, idx):
    return tree_map(lambda x: x[idx], tree)


# ----------------------------------------------------------------------------------------- the checker


class _Ctx:
    """Shared inputs of the checks: truth, real batches, covariates, and the fitted model (computed lazily)."""

    def __init__(self, family: Family, source: Source, n: int, seed: int, draws: Optional[int], z: float):
        self.family, self.source, self.n, self.z = family, source, int(n), float(z)
        self.kind = source.kind
        self.key = jax.random.key(seed)
        k_truth = jax.random.fold_in(self.key, 1)
        data = tree_map(jnp.asarray, dict(source.data or {}))
        self.truth = {**source.init(k_truth), **data}
        defaults = {"text": 128, "image": 256}
        self.draws = int(draws) if draws is not None else defaults.get(self.kind, 4096)
        self.A = self.real(0)
        floats = self.kind not in ("discrete", "text")
        self.dtype = _dtype_of(self.A) if floats else jnp.result_type(float)  # the default float dtype
        self.tol = float_tol(self.dtype)
        # two compilations of one training run (jit vs not, vmap vs a loop) differ by rounding, which gradient
        # steps amplify (Adam normalises a mathematically zero gradient of float noise to a full step)
        self.loose = max(self.tol, TRAINED_TOL) if family.trains else self.tol
        self.cov = self.covariates(jax.random.fold_in(self.key, 3), self.n)
        self._cache: dict = {}

    # --- data --------------------------------------------------------------------------------------
    def real(self, i: int):
        """Real batch number ``i`` of n rows (a finite source: generation 0's batch, then its fresh pool)."""
        src, n = self.source, self.n
        if src.real_batch is not None:
            if i == 0:
                return src.real_batch(self.truth, 0, n)
            fresh = self.truth.get("fresh")
            if fresh is not None and np.shape(fresh)[0] >= i * n:
                return src.real_batch(self.truth, i, n)
            base = src.real_batch(self.truth, 0, n)  # too few fresh rows: a shuffled copy of generation 0
            return _take(base, jax.random.permutation(jax.random.fold_in(self.key, 100 + i), n))
        return src.sample(jax.random.fold_in(self.key, 10 + i), self.truth, n)

    @property
    def has_real_sampler(self) -> bool:
        return self.source.real_batch is None

    def real_draws(self, key, m: int):
        """About m exact draws of the source (supervised: ceil(m / n) batches of n rows, as the design allows)."""
        if self.kind != "supervised":
            return self.source.sample(key, self.truth, m)
        reps = max(1, math.ceil(m / self.n))
        out = jax.vmap(lambda k: self.source.sample(k, self.truth, self.n))(jax.random.split(key, reps))
        return tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), out)

    def covariates(self, key, m: int):
        return self.source.covariates(key, self.truth, m) if self.source.covariates is not None else None

    def garbage(self, key, like):
        """Finite nonsense in the layout of ``like``: large floats, uniformly random valid ids."""
        leaves, tdef = jax.tree_util.tree_flatten(like)
        keys = jax.random.split(key, len(leaves))
        out = []
        for k, x in zip(keys, leaves):
            x = jnp.asarray(x)
            if jnp.issubdtype(x.dtype, jnp.floating):
                out.append((1e3 + 1e3 * jax.random.normal(k, x.shape)).astype(x.dtype))
            else:
                out.append(jax.random.randint(k, x.shape, 0, max(int(self.source.dim), 1)).astype(x.dtype))
        return jax.tree_util.tree_unflatten(tdef, out)

    # --- the model -------------------------------------------------------------------------------------
    def ones(self, m: int):
        return jnp.ones(m, bool)

    @property
    def fit_key(self):
        return jax.random.fold_in(self.key, 4)

    @property
    def sample_key(self):
        return jax.random.fold_in(self.key, 5)

    def cached(self, name: str, fn: Callable[[], Any]):
        if name not in self._cache:
            try:
                self._cache[name] = ("ok", fn())
            except Exception as exc:  # every check needing it reports the same error
                self._cache[name] = ("err", exc)
        status, value = self._cache[name]
        if status == "err":
            raise RuntimeError(f"{name} raised {type(value).__name__}: {_first_line(value)}") from value
        return value

    @property
    def jfit(self):
        """``jax.jit`` of fit with prev None (one per context, so shapes already compiled are reused)."""
        if "_jfit" not in self._cache:
            fam = self.family
            self._cache["_jfit"] = ("ok", jax.jit(lambda k, b, m: fam.fit(k, b, m, None)))
        return self._cache["_jfit"][1]

    @property
    def jwarm(self):
        if "_jwarm" not in self._cache:
            fam = self.family
            self._cache["_jwarm"] = ("ok", jax.jit(lambda k, b, m, p: fam.fit(k, b, m, p)))
        return self._cache["_jwarm"][1]

    def jsample(self, key, params, scale):
        """n draws, jitted, with a traced ``scale`` (as in the engine)."""
        if "_js" not in self._cache:
            self._cache["_js"] = ("ok", jax.jit(lambda k, p, s: self.sample(k, p, scale=s)))
        return self._cache["_js"][1](key, params, jnp.asarray(scale, self.dtype))

    def log_prob(self, params, batch):
        """The family's log_prob, jitted (statistical checks on many rows)."""
        if "_jlp" not in self._cache:
            self._cache["_jlp"] = ("ok", jax.jit(self.family.log_prob))
        return self._cache["_jlp"][1](params, batch)

    def true_log_prob(self, batch):
        if "_jtlp" not in self._cache:
            self._cache["_jtlp"] = ("ok", jax.jit(self.source.log_prob))
        return self._cache["_jtlp"][1](self.truth, batch)

    @property
    def params(self):
        return self.cached("fit(key, real batch, mask, None)",
                           lambda: self.family.fit(self.fit_key, self.A, self.ones(self.n), None))

    def sample(self, key, params, m: Optional[int] = None, scale=1.0, cov=None):
        """m draws (default n); with covariates (supervised, prompts) only n at a time, as the engine does."""
        m = self.n if m is None else m
        if self.source.covariates is None:
            return self.family.sample(key, params, m, scale, None)
        cov = self.cov if cov is None else cov
        return self.family.sample(key, params, self.n, scale, cov)

    def many(self, key, params, m: int, scale=1.0):
        """About m model draws at ``scale`` (jitted): one call, or ceil(m / n) calls of n rows with covariates."""
        fam, name = self.family, f"_many{m}"
        if self.source.covariates is None:
            if name not in self._cache:
                self._cache[name] = ("ok", jax.jit(lambda k, p, s: fam.sample(k, p, m, s, None)))
            return self._cache[name][1](key, params, jnp.asarray(scale, self.dtype))
        reps = max(1, math.ceil(m / self.n))
        if name not in self._cache:
            self._cache[name] = ("ok", jax.jit(jax.vmap(lambda k, p, s: fam.sample(k, p, self.n, s, self.cov),
                                                        in_axes=(0, None, None))))
        out = self._cache[name][1](jax.random.split(key, reps), params, jnp.asarray(scale, self.dtype))
        return tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), out)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# ----------------------------------------------------------------------------------------- checks


def _check_layout(c: _Ctx) -> list[str]:
    fam, src, n = c.family, c.source, c.n
    out = []
    x = c.jsample(c.sample_key, c.params, 1.0)
    out += [f"sample vs a real batch: {d}" for d in structure_diff(x, c.A, "model draws", "real batch")]
    kind = c.kind
    if kind in ("continuous", "image"):
        if np.shape(x) != (n, src.dim) or not jnp.issubdtype(x.dtype, jnp.floating):
            out.append(f"sample must be ({n}, {src.dim}) float for a {kind} source, got {np.shape(x)} "
                       f"{getattr(x, 'dtype', type(x))}")
        elif not bool(jnp.all(jnp.isfinite(x))):
            out.append("sample has non-finite values")
        elif kind == "image" and not bool(jnp.all((x >= 0) & (x <= 1))):
            out.append(f"image draws must lie in [0, 1], got [{float(jnp.min(x)):.3g}, {float(jnp.max(x)):.3g}]")
    elif kind == "discrete":
        if np.shape(x) != (n,) or not jnp.issubdtype(x.dtype, jnp.integer):
            out.append(f"sample must be ({n},) int for a discrete source, got {np.shape(x)} {getattr(x, 'dtype', '')}")
        elif not bool(jnp.all((x >= 0) & (x < src.dim))):
            out.append(f"sample has category ids outside [0, {src.dim})")
    elif kind == "supervised":
        if not (isinstance(x, dict) and set(x) == {"x", "y"}):
            out.append(f"sample must be a dict {{'x', 'y'}} for a supervised source, got {type(x).__name__}")
        else:
            if np.shape(x["y"]) != (n,) or not jnp.issubdtype(x["y"].dtype, jnp.floating):
                out.append(f"sample['y'] must be ({n},) float, got {np.shape(x['y'])}")
            if c.cov is not None and not (np.shape(x["x"]) == np.shape(c.cov)
                                          and bool(jnp.all(x["x"] == c.cov))):
                out.append("sample['x'] must be the covariates it was given")
            if not bool(jnp.all(jnp.isfinite(x["y"]))):
                out.append("sample['y'] has non-finite values")
    elif kind == "text":
        L = src.segment
        if np.shape(x) != (n, L) or not jnp.issubdtype(x.dtype, jnp.integer):
            out.append(f"sample must be ({n}, {L}) int tokens for a text source, got {np.shape(x)} "
                       f"{getattr(x, 'dtype', '')}")
        else:
            if not bool(jnp.all((x >= 0) & (x < src.dim))):
                out.append(f"sample has token ids outside [0, {src.dim})")
            if c.cov is not None:
                P = np.shape(c.cov)[1]
                if not bool(jnp.all(x[:, :P] == c.cov)):
                    out.append(f"sampled segments must start with their {P}-token prompt")
    if fam.log_prob is not None:
        for label, batch in (("real batch", c.A), ("model draws", x)):
            lp = c.log_prob(c.params, batch)
            shape = np.shape(lp)
            allowed = [(n,)] + ([(n, src.segment)] if kind == "text" else [])
            if shape not in allowed or not jnp.issubdtype(jnp.result_type(lp), jnp.floating):
                out.append(f"log_prob of the {label} must be {' or '.join(map(str, allowed))} float, got {shape} "
                           f"{jnp.result_type(lp)}")
                continue
            if label == "model draws":
                lp = np.asarray(lp)
                nan = np.isnan(lp)
                if kind == "text" and lp.ndim == 2 and nan.any():
                    cols = nan.all(0)
                    if not np.array_equal(nan, np.broadcast_to(cols, nan.shape)):
                        out.append("log_prob has NaN outside whole (undefined) positions")
                    if cols.all():
                        out.append("log_prob is NaN at every position")
                    lp = lp[:, ~cols]
                elif nan.any():
                    out.append("log_prob of the model's own draws has NaN")
                if not np.all(np.isfinite(lp[~np.isnan(lp)])):
                    out.append("log_prob of the model's own draws is not finite (a draw outside the model's support?)")
    return out


def _check_init_structure(c: _Ctx) -> list[str]:
    fam = c.family
    ones = c.ones(c.n)
    fitted = jax.eval_shape(lambda k, b: fam.fit(k, b, ones, None), c.fit_key, c.A)
    out = [f"init vs fit: {d}" for d in structure_diff(jax.eval_shape(fam.init, c.truth), fitted, "init", "fit")]
    warm = jax.eval_shape(lambda k, b, p: fam.fit(k, b, ones, p), c.fit_key, c.A, c.params)
    out += [f"fit(prev=params) vs fit(prev=None): {d}" for d in structure_diff(warm, fitted, "warm", "cold")]
    return out


def _interleaved(c: _Ctx, garbage):
    """Valid rows A interleaved at random positions with ``garbage`` rows, and the mask of the valid ones."""
    n, g = c.n, _rows(garbage)
    perm = jax.random.permutation(jax.random.fold_in(c.key, 20), n + g)
    batch = _take(_concat(c.A, garbage), perm)
    return batch, perm < n  # original positions < n are the valid rows, in their original order


def _check_mask_garbage(c: _Ctx) -> list[str]:
    fam, g = c.family, max(2, c.n // 2)
    other = c.real(1)
    g1 = _take(other, jnp.arange(g) % c.n)
    g2 = c.garbage(jax.random.fold_in(c.key, 21), g1)
    b1, m1 = _interleaved(c, g1)
    b2, _ = _interleaved(c, g2)
    p1, p2 = c.jfit(c.fit_key, b1, m1), c.jfit(c.fit_key, b2, m1)
    return [f"masked rows changed the fit: {d}" for d in tree_close(p2, p1, c.tol, "params")]


def _compare_models(c: _Ctx, p, ref, what: str) -> list[str]:
    """``p`` vs ``ref``: params when their shapes agree, else log_prob on real and model rows (or draws)."""
    if not structure_diff(p, ref):
        return [f"{what}: {d}" for d in tree_close(p, ref, c.loose, "params")]
    fam = c.family
    if fam.log_prob is not None:
        probe = _concat(c.real(1), c.sample(c.sample_key, ref))
        return [f"{what} (params of another shape, compared by log_prob): {d}"
                for d in tree_close(c.log_prob(p, probe), c.log_prob(ref, probe), c.loose, "log_prob")]
    return [f"{what} (params of another shape, compared by draws): {d}"
            for d in tree_close(c.jsample(c.sample_key, p, 1.0), c.jsample(c.sample_key, ref, 1.0), c.loose, "draws")]


def _check_mask_padding(c: _Ctx) -> list[str]:
    fam, g = c.family, max(2, c.n // 2)
    pad = c.garbage(jax.random.fold_in(c.key, 22), _take(c.A, jnp.arange(g) % c.n))
    mask = jnp.arange(c.n + g) < c.n
    padded = c.jfit(c.fit_key, _concat(c.A, pad), mask)
    alone = c.jfit(c.fit_key, c.A, c.ones(c.n))
    return _compare_models(c, padded, alone, "valid rows + masked padding vs the valid rows alone")


def _check_jit(c: _Ctx) -> list[str]:
    fam, ones, out = c.family, c.ones(c.n), []
    out += tree_close(c.jfit(c.fit_key, c.A, ones), c.params, c.loose, "fit(prev=None) ")
    draw = c.jsample(c.sample_key, c.params, 1.0)
    out += tree_close(draw, c.sample(c.sample_key, c.params), c.tol, "sample (traced scale 1) ")
    if fam.log_prob is not None:
        out += tree_close(c.log_prob(c.params, c.A), fam.log_prob(c.params, c.A), c.tol, "log_prob ")
    return out


def _check_vmap(c: _Ctx) -> list[str]:
    fam, ones = c.family, c.ones(c.n)
    B = c.real(1)
    keys = jnp.stack([c.fit_key, jax.random.fold_in(c.key, 30)])
    skeys = jnp.stack([c.sample_key, jax.random.fold_in(c.key, 31)])
    batches = tree_map(lambda a, b: jnp.stack([a, b]), c.A, B)

    def one(k, b, sk):  # one replicate: fit, draw, score (one compiled program for all three)
        p = fam.fit(k, b, ones, None)
        lp = fam.log_prob(p, c.A) if fam.log_prob is not None else None
        return p, c.sample(sk, p), lp

    vp, vx, vlp = jax.jit(jax.vmap(one))(keys, batches, skeys)
    out = []
    for r, b in enumerate((c.A, B)):
        p = c.jfit(keys[r], b, ones)
        out += tree_close(tree_map(lambda x: x[r], vp), p, c.loose, f"fit replicate {r}: ")
        out += tree_close(tree_map(lambda x: x[r], vx), c.jsample(skeys[r], p, 1.0), c.loose, f"sample replicate {r}: ")
        if vlp is not None:
            out += tree_close(vlp[r], c.log_prob(p, c.A), c.loose, f"log_prob replicate {r}: ")
    return out


def _check_scan(c: _Ctx) -> list[str]:
    fam, ones = c.family, c.ones(c.n)
    keys = jax.random.split(jax.random.fold_in(c.key, 40), 2)

    def step(p, k, s):
        ks, kf = jax.random.split(k)
        return fam.fit(kf, c.sample(ks, p, scale=s), ones, p)

    scanned = jax.jit(lambda p, ks, s: jax.lax.scan(lambda q, k: (step(q, k, s), None), p, ks)[0])(
        c.params, keys, jnp.asarray(1.0, c.dtype))
    p = c.params
    for k in keys:  # the same generations as a Python loop of single jitted calls
        ks, kf = jax.random.split(k)
        p = c.jwarm(kf, c.jsample(ks, p, 1.0), ones, p)
    return tree_close(scanned, p, c.loose, "params after 2 generations: ")


def _check_determinism(c: _Ctx) -> list[str]:
    fam, ones = c.family, c.ones(c.n)
    # a second, independent trace: state kept between calls or randomness at trace time (NumPy, Python) differs
    fit = jax.jit(lambda k, b, m: fam.fit(k, b, m, None))
    out = tree_close(fit(c.fit_key, c.A, ones), c.jfit(c.fit_key, c.A, ones), c.tol, "fit twice: ")
    draw = jax.jit(lambda k, p, s: c.sample(k, p, scale=s))(c.sample_key, c.params, jnp.asarray(1.0, c.dtype))
    out += tree_close(draw, c.jsample(c.sample_key, c.params, 1.0), c.tol, "sample twice: ")
    return out


def _check_key_dependence(c: _Ctx) -> list[str]:
    a = c.jsample(c.sample_key, c.params, 1.0)
    b = c.jsample(jax.random.fold_in(c.key, 50), c.params, 1.0)
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    if c.kind == "supervised":  # x is the given covariates, only y is drawn
        la, lb = [a["y"]], [b["y"]]
    if all(bool(jnp.all(x == y)) for x, y in zip(la, lb)):
        return ["two different keys gave identical draws (does sample use a fixed key instead of its key?)"]
    return []


def _mean_se(v) -> tuple[float, float]:
    v = np.asarray(v, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


def _seq_logp(c: _Ctx, lp_model, lp_true):
    """Per-row total log-probability over the positions both score (text), or the values themselves."""
    a, b = np.asarray(lp_model, np.float64), np.asarray(lp_true, np.float64)
    if a.ndim == 1 and b.ndim == 1:
        return a, b
    if a.ndim != 2 or b.ndim != 2:
        raise _Skip(f"per-row log_prob (shape {a.shape}) and the source's per-position log_prob {b.shape} cannot "
                    "be matched position by position")
    cols = ~(np.isnan(a).all(0) | np.isnan(b).all(0))
    return a[:, cols].sum(1), b[:, cols].sum(1)


def _gibbs_needs(c: _Ctx) -> None:
    if c.family.log_prob is None:
        raise _Skip("the family has no log_prob")
    if c.source.log_prob is None or not c.has_real_sampler:
        raise _Skip(f"source={c.source.name} has no exact density to compare with")


def _gibbs(c: _Ctx, x, sign: float, what: str) -> list[str]:
    lm, lt = _seq_logp(c, c.log_prob(c.params, x), c.true_log_prob(x))
    with np.errstate(invalid="ignore"):
        d = sign * (lt - lm)
    if np.any(np.isnan(d) | np.isneginf(d)):
        bad = int(np.sum(np.isnan(d) | np.isneginf(d)))
        return [f"{bad} of {len(d)} {what} have a NaN or -inf log-ratio (log_prob NaN, or +inf)"]
    if np.any(np.isposinf(d)):  # a point of probability 0 under the other density: the KL is +inf >= 0
        return []
    mean, se = _mean_se(d)
    slack = c.z * se + 10 * c.tol * (1.0 + float(np.mean(np.abs(lt))))
    if mean < -slack:
        return [f"mean {what} log-ratio {mean:.4g} < 0 by more than {c.z:g} SE ({se:.2g}): a KL divergence cannot be "
                "negative, so log_prob is not a normalised log-density of what the model"
                + (" is fitted to" if sign > 0 else " samples")]
    return []


def _check_gibbs_real(c: _Ctx) -> list[str]:
    _gibbs_needs(c)
    return _gibbs(c, c.real_draws(jax.random.fold_in(c.key, 60), c.draws), 1.0, "real draws")


def _check_gibbs_own(c: _Ctx) -> list[str]:
    _gibbs_needs(c)
    if c.family.trains:
        raise _Skip("a trained family's log_prob may be a bound (the VAE's ELBO), not the density it samples")
    return _gibbs(c, c.many(jax.random.fold_in(c.key, 61), c.params, c.draws), -1.0, "model draws")


def _category_probs(c: _Ctx):
    return np.exp(np.asarray(c.log_prob(c.params, jnp.arange(c.source.dim, dtype=c.A.dtype)), np.float64))


def _check_normalised(c: _Ctx) -> list[str]:
    fam = c.family
    if fam.log_prob is None:
        raise _Skip("the family has no log_prob")
    if c.kind == "discrete":
        total = float(_category_probs(c).sum())
        return [] if abs(total - 1.0) <= 10 * c.tol else [f"sum_k exp(log_prob(k)) = {total:.6g}, not 1"]
    if c.kind != "text":
        raise _Skip(f"no enumerable support for a {c.kind} source")
    x = c.jsample(c.sample_key, c.params, 1.0)[:4]
    V = c.source.dim
    lp = np.asarray(fam.log_prob(c.params, x))
    if lp.ndim != 2 or np.isnan(lp[:, -1]).all():
        raise _Skip("log_prob gives no per-position score at the last position")
    variants = jnp.repeat(x, V, 0).at[:, -1].set(jnp.tile(jnp.arange(V, dtype=x.dtype), x.shape[0]))
    last = np.asarray(c.log_prob(c.params, variants), np.float64)[:, -1].reshape(x.shape[0], V)
    mx = last.max(1, keepdims=True)
    lse = (mx[:, 0] + np.log(np.exp(last - mx).sum(1)))
    if np.max(np.abs(lse)) > 10 * c.tol:
        return [f"the last position's log_prob over the {V} tokens has logsumexp {lse.round(5).tolist()}, not 0"]
    return []


def _chi2(counts: np.ndarray, p: np.ndarray, z: float) -> Optional[str]:
    """Pearson chi-square of counts against p (bins with expected count < 5 pooled); None when it fits."""
    N = counts.sum()
    e = N * p
    if np.any((p == 0) & (counts > 0)):
        return f"{int(np.sum((p == 0) & (counts > 0)))} categories of probability 0 were drawn"
    big = e >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(e[big], e[~big].sum())
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    df = len(obs) - 1
    if df < 1:
        return None
    stat = float(np.sum((obs - exp) ** 2 / exp))
    limit = df + z * math.sqrt(2 * df) + 10.0
    return None if stat <= limit else f"chi-square {stat:.1f} on {df} df (limit {limit:.1f})"


def _check_sample_law(c: _Ctx) -> list[str]:
    if c.kind != "discrete":
        raise _Skip(f"a frequency test needs a discrete source, not {c.kind}")
    if c.family.log_prob is None:
        raise _Skip("the family has no log_prob")
    p = _category_probs(c)
    p = p / p.sum()
    x = np.asarray(c.many(jax.random.fold_in(c.key, 62), c.params, max(c.draws, 20000)))
    bad = _chi2(np.bincount(x, minlength=c.source.dim).astype(np.float64), p, c.z)
    return [f"draws do not follow exp(log_prob): {bad}"] if bad else []


def _mixture_logpdf(x, w, means, covs):
    """log sum_k w_k N(x | means_k, covs_k) in float64 NumPy."""
    x, w, means, covs = (np.asarray(a, np.float64) for a in (x, w, means, covs))
    d = x.shape[1]
    out = []
    for k in range(len(w)):
        L = np.linalg.cholesky(covs[k])
        zk = np.linalg.solve(L, (x - means[k]).T)
        logdet = 2 * np.sum(np.log(np.diag(L)))
        with np.errstate(divide="ignore"):
            out.append(np.log(w[k]) - 0.5 * np.sum(zk * zk, 0) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi))
    a = np.stack(out, 1)
    m = a.max(1, keepdims=True)
    return m[:, 0] + np.log(np.exp(a - m).sum(1))


def _check_components(c: _Ctx) -> list[str]:
    fam = c.family
    if fam.components is None:
        raise _Skip("the family has no components")
    w, means, covs = (np.asarray(a, np.float64) for a in fam.components(c.params))
    d, out = c.source.dim, []
    K = len(w)
    if w.shape != (K,) or means.shape != (K, d) or covs.shape != (K, d, d):
        return [f"components must be (K,), (K, {d}), (K, {d}, {d}); got {w.shape}, {means.shape}, {covs.shape}"]
    if np.any(w < 0) or abs(w.sum() - 1) > 10 * c.tol:
        out.append(f"weights must be >= 0 and sum to 1 (sum {w.sum():.6g})")
    if np.max(np.abs(covs - np.swapaxes(covs, 1, 2))) > c.tol * max(1.0, np.max(np.abs(covs))):
        out.append("covariances are not symmetric")
    if fam.gaussian and K != 1:
        out.append(f"gaussian=True needs exactly one component, got {K}")
    if fam.log_prob is not None and not out:
        draws = c.jsample(c.sample_key, c.params, 1.0)
        x = _concat(c.A, draws)
        lp = np.concatenate([np.asarray(c.log_prob(c.params, b), np.float64) for b in (c.A, draws)])
        ref = _mixture_logpdf(x, w, means, covs)
        err = np.abs(lp - ref)
        lim = 10 * c.tol * (1 + np.abs(ref))
        if not np.all(err <= lim):
            i = int(np.argmax(err - lim))
            out.append(f"log_prob differs from the mixture density of the components: {lp[i]:.6g} vs {ref[i]:.6g}")
    return out


def _check_probs(c: _Ctx) -> list[str]:
    fam = c.family
    if fam.probs is None:
        raise _Skip("the family has no probs")
    p = np.asarray(fam.probs(c.params), np.float64)
    K = c.source.dim
    if p.shape != (K,):
        return [f"probs must be ({K},), got {p.shape}"]
    out = []
    if np.any(p < 0) or abs(p.sum() - 1) > 10 * c.tol:
        out.append(f"probs must be >= 0 and sum to 1 (sum {p.sum():.6g})")
    if fam.log_prob is not None:
        q = _category_probs(c)
        err = float(np.max(np.abs(p - q)))
        if err > 10 * c.tol * max(p.max(), 1e-12):
            out.append(f"probs differ from exp(log_prob) by up to {err:.3g}")
    return out


def _check_transitions(c: _Ctx) -> list[str]:
    fam = c.family
    if fam.transitions is None:
        raise _Skip("the family has no transitions")
    T = np.asarray(fam.transitions(c.params), np.float64)
    V = c.source.dim
    m = round(math.log(T.shape[0], V)) if T.ndim == 2 and T.shape[0] > 1 else 0
    if T.ndim != 2 or T.shape[1] != V or V ** m != T.shape[0]:
        return [f"transitions must be (V^m, V) with V = {V}, got {T.shape}"]
    out = []
    rows = T.sum(1)
    if np.any(T < 0) or np.max(np.abs(rows - 1)) > 10 * c.tol:
        out.append(f"rows of transitions must be distributions (row sums in [{rows.min():.6g}, {rows.max():.6g}])")
    if fam.log_prob is not None:
        x = np.asarray(c.jsample(c.sample_key, c.params, 1.0))
        lp = np.asarray(c.log_prob(c.params, jnp.asarray(x)), np.float64)
        if lp.ndim == 2:
            L = x.shape[1]
            ctx = np.zeros((x.shape[0], L - m), np.int64)
            for i in range(m):
                ctx = ctx * V + x[:, i:L - m + i]
            with np.errstate(divide="ignore"):
                ref = np.log(T[ctx, x[:, m:]])
            got = lp[:, m:]
            ok = np.isnan(got) | np.isclose(got, ref, rtol=0, atol=10 * c.tol) | (np.isneginf(got) & np.isneginf(ref))
            if not ok.all():
                out.append(f"log_prob disagrees with log transitions at {int((~ok).sum())} positions of model draws")
    return out


def _check_coef(c: _Ctx) -> list[str]:
    fam = c.family
    if fam.coef is None:
        raise _Skip("the family has no coef")
    w = np.asarray(fam.coef(c.params), np.float64)
    d = c.source.dim
    if w.shape != (d,):
        return [f"coef must be ({d},), got {w.shape}"]
    b = c.many(jax.random.fold_in(c.key, 63), c.params, c.draws)
    x, y = np.asarray(b["x"], np.float64), np.asarray(b["y"], np.float64)
    prod = (y - x @ w)[:, None] * x  # E[r x_j] = 0 when E[y | x] = x . coef
    mean = prod.mean(0)
    se = prod.std(0, ddof=1) / math.sqrt(len(prod))
    bad = np.abs(mean) > c.z * se + 10 * c.tol * (1 + np.abs(prod).mean(0))
    return [f"draws' residuals correlate with x (E[(y - x.coef) x_j] = {mean[bad].round(4).tolist()}): "
            "sample does not use coef"] if bad.any() else []


def _moment_errors(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, z: float, tol: float) -> list[str]:
    """Sample mean and covariance of x against (mean, cov), entry by entry within z standard errors."""
    N, d = x.shape
    out = []
    m = x.mean(0)
    se_m = x.std(0, ddof=1) / math.sqrt(N)
    for j in range(d):
        if abs(m[j] - mean[j]) > z * se_m[j] + tol * (1 + abs(mean[j])):
            out.append(f"mean[{j}] {m[j]:.4g} vs {mean[j]:.4g} (SE {se_m[j]:.2g})")
    xc = x - mean
    for i in range(d):
        for j in range(i, d):
            v = xc[:, i] * xc[:, j]
            se = v.std(ddof=1) / math.sqrt(N)
            if abs(v.mean() - cov[i, j]) > z * se + tol * (1 + abs(cov[i, j])):
                out.append(f"cov[{i},{j}] {v.mean():.4g} vs {cov[i, j]:.4g} (SE {se:.2g})")
    return out


def _check_scale(c: _Ctx) -> list[str]:
    fam, out = c.family, []
    if c.kind in ("continuous", "image") and fam.components is not None:
        w, means, covs = (np.asarray(a, np.float64) for a in fam.components(c.params))
        mu = w @ means
        between = np.einsum("k,ki,kj->ij", w, means - mu, means - mu)
        within = np.einsum("k,kij->ij", w, covs)
        for s in (1.0, 2.0, 0.5):
            x = np.asarray(c.many(jax.random.fold_in(c.key, 70), c.params, c.draws, s), np.float64)
            out += [f"scale {s:g}: {e}" for e in _moment_errors(x, mu, s * within + between, c.z, 10 * c.tol)]
        return out
    if c.kind == "discrete" and fam.log_prob is not None:
        p = _category_probs(c)
        for s in (2.0, 0.5):
            q = p ** (1.0 / s)
            q = q / q.sum()
            x = np.asarray(c.many(jax.random.fold_in(c.key, 71), c.params, max(c.draws, 20000), s))
            bad = _chi2(np.bincount(x, minlength=c.source.dim).astype(np.float64), q, c.z)
            if bad:
                out.append(f"scale {s:g}: draws do not follow p^(1/s) renormalised: {bad}")
        return out
    if c.kind == "supervised" and fam.coef is not None:
        w = np.asarray(fam.coef(c.params), np.float64)
        logv = []
        for s in (1.0, 2.0):
            b = c.many(jax.random.fold_in(c.key, 72), c.params, c.draws, s)
            r = np.asarray(b["y"], np.float64) - np.asarray(b["x"], np.float64) @ w
            v = float(np.mean(r * r))
            kurt = float(np.mean(r ** 4) / max(v * v, 1e-300))
            logv.append((math.log(v), (kurt - 1) / len(r)))
        diff, var = logv[1][0] - logv[0][0], logv[0][1] + logv[1][1]
        if abs(diff - math.log(2.0)) > c.z * math.sqrt(var) + 10 * c.tol:
            out.append(f"residual variance at scale 2 / at scale 1 = {math.exp(diff):.4g}, not 2")
        return out
    if c.kind == "text":
        raise _Skip("text sources sample at scale 1 (decoding controls instead)")
    if c.kind == "supervised":
        raise _Skip("the family has no coef to read the label noise from")
    if fam.components is None and c.kind in ("continuous", "image"):
        raise _Skip("no components: the scale acts on the family's own noise (no generic expectation)")
    raise _Skip("the family has no log_prob to read its probabilities from")


def _stats_needs(c: _Ctx) -> None:
    if not c.family.has_stats:
        raise _Skip("the family has no sufficient-statistic path (stats, merge_stats, fit_stats)")


def _check_stats(c: _Ctx) -> list[str]:
    _stats_needs(c)
    fam, n = c.family, c.n
    g = max(1, n // 4)
    valid = _take(c.A, jnp.arange(n - g))
    garbage = c.garbage(jax.random.fold_in(c.key, 80), _take(c.A, jnp.arange(g)))
    perm = jax.random.permutation(jax.random.fold_in(c.key, 81), n)
    batch, mask = _take(_concat(valid, garbage), perm), perm < n - g  # n rows, g of them masked
    s = fam.stats(batch, mask)
    out = tree_close(fam.fit_stats(c.fit_key, s, None), c.jfit(c.fit_key, batch, mask), c.tol, "prev=None: ")
    out += tree_close(fam.fit_stats(c.fit_key, s, c.params), c.jwarm(c.fit_key, batch, mask, c.params), c.tol,
                      "prev=params: ")
    return out


def _check_merge_stats(c: _Ctx) -> list[str]:
    _stats_needs(c)
    fam, n = c.family, c.n
    B = c.real(1)
    mb = jnp.arange(n) % 3 != 0
    ones = c.ones(n)
    merged = fam.merge_stats(fam.stats(c.A, ones), fam.stats(B, mb))
    return tree_close(merged, fam.stats(_concat(c.A, B), jnp.concatenate([ones, mb])), c.tol, "stats: ")


def _check_stats_sampler(c: _Ctx) -> list[str]:
    _stats_needs(c)
    fam = c.family
    if fam.sample_stats is None:
        raise _Skip("the family has no sample_stats")
    n, R = c.n, 512
    cov_stats = None
    if c.kind == "supervised":
        cov_stats = c.cov.T @ c.cov
    ones = c.ones(n)
    direct = jax.jit(jax.vmap(lambda k: fam.sample_stats(k, c.params, n, jnp.asarray(1.0, c.dtype), cov_stats)))
    points = jax.jit(jax.vmap(lambda k: fam.stats(c.sample(k, c.params), ones)))
    a = direct(jax.random.split(jax.random.fold_in(c.key, 90), R))
    b = points(jax.random.split(jax.random.fold_in(c.key, 91), R))
    out = [f"sample_stats vs stats of draws: {d}" for d in structure_diff(
        tree_map(lambda x: x[0], a), tree_map(lambda x: x[0], b), "sample_stats", "stats(sample)")]
    if out:
        return out
    for (p, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_leaves(b)):
        x, y = np.asarray(x, np.float64).reshape(R, -1), np.asarray(y, np.float64).reshape(R, -1)
        se = np.sqrt(x.var(0, ddof=1) / R + y.var(0, ddof=1) / R)
        gap = np.abs(x.mean(0) - y.mean(0))
        zz = c.z + math.sqrt(2 * math.log(gap.size)) if gap.size > 1 else c.z  # many entries: Bonferroni-like
        bad = gap > zz * se + 10 * c.tol * (1 + np.abs(y.mean(0)))
        if bad.any():
            i = int(np.argmax(gap - c.z * se))
            out.append(f"{_path(p)}: mean over {R} replicates differs at {int(bad.sum())} of {bad.size} entries "
                       f"(e.g. {x.mean(0)[i]:.4g} vs {y.mean(0)[i]:.4g}, SE {se[i]:.2g})")
    return out


_FUNCS: dict[str, Callable[[_Ctx], list[str]]] = {name: globals()[f"_check_{name}"] for name in CHECKS}


def check_family(family: Family, source: Source, *, n: int = 64, seed: int = 0, draws: Optional[int] = None,
                 z: float = 5.0, checks: Optional[tuple[str, ...]] = None) -> ContractReport:
    """Run the contract checks (module docstring) of ``family`` on ``source`` at batch size ``n`` (use the
    engine's batch size, ``loop.samples`` or its segments, for families whose params depend on it, such as the
    KDE); ``draws``: model draws of the statistical checks (default 4096, 256 for images, 128 for text);
    ``z``: standard errors allowed; ``checks``: a subset of :data:`CHECKS`. Never raises for a broken family:
    each failure (an exception included) is a failed check of the report."""
    names = CHECKS if checks is None else tuple(checks)
    unknown = [x for x in names if x not in _FUNCS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    report = ContractReport(family.name, source.name)
    if source.kind not in family.kinds:
        report.checks.append(Check("kinds", "fail", f"family kinds {family.kinds} do not include the source kind "
                                   f"{source.kind!r}"))
    try:
        ctx = _Ctx(family, source, n, seed, draws, z)
    except Exception as exc:
        report.checks.append(Check("setup", "fail", f"{type(exc).__name__}: {_first_line(exc)}"))
        return report
    for name in names:
        try:
            problems = _FUNCS[name](ctx)
        except _Skip as why:
            report.checks.append(Check(name, "skip", str(why)))
            continue
        except Exception as exc:
            problems = [f"raised {type(exc).__name__}: {_first_line(exc)}"]
        report.checks.append(Check(name, "fail", "; ".join(problems)) if problems else Check(name, "pass"))
    return report


def assert_family_contract(family: Family, source: Source, **kwargs) -> ContractReport:
    """:func:`check_family`, raising an AssertionError that lists every failed check; returns the report."""
    report = check_family(family, source, **kwargs)
    if not report.ok:
        raise AssertionError(f"model={report.family} breaks the family contract on source={report.source}:\n  "
                             + "\n  ".join(report.failures) + "\n" + str(report))
    return report


def check_config(*overrides: str, **kwargs) -> ContractReport:
    """:func:`check_family` of the family and source a run with these overrides builds (CLI syntax, e.g.
    ``check_config("model=laplace", "hydra.searchpath=[file://./conf]")``), at the run's batch size."""
    from collapse import config as C
    from collapse.api import batch_units, precision_context

    cfg = C.validate(C.compose(list(overrides)))
    with precision_context(cfg):
        source = C.build_source(cfg)
        family = C.build_family(cfg, source)
        return check_family(family, source, n=batch_units(cfg, source)[0], **kwargs)
