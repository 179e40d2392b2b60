"""Every model family passes the family contract (:mod:`collapse.testing`) on every source it accepts, built the
way a run builds them, at tiny sizes; and deliberately broken families are caught, by the check that names the
broken property."""
from __future__ import annotations

import dataclasses
import struct

import jax.numpy as jnp
import numpy as np
import pytest

import collapse.config as C
from collapse import errors
from collapse.api import batch_units, precision_context
from collapse.testing import CHECKS, assert_family_contract, check_family

# Tiny sizes: a batch of 64 points (text: 16 segments of 16 tokens), neural families with a few steps of tiny nets.
COMMON = ("generations=2", "replicates=1", "loop.samples=64", "quiet=true")
MODEL_TINY = {
    "gmm": ("model.em_steps=5",),
    "transformer": ("model.layers=1", "model.d_model=16", "model.heads=2", "model.context=16", "model.steps=3",
                    "model.batch=8", "model.warmup=1"),
    "vae": ("model.latent=2", "model.hidden=16", "model.steps=3", "model.batch=16", "model.warmup=1"),
    "diffusion": ("model.hidden=16", "model.steps=3", "model.batch=16", "model.warmup=1", "model.sampler_steps=4"),
}
# Sources of one kind share their shapes (every continuous source 2-D, images 8 x 8 like digits, text over 32 token
# types), so a family's programs compile once per kind (the persistent compilation cache serves the other sources).
SOURCE_TINY = {
    "gaussian": ("source.dim=2",),
    "student_t": ("source.dim=2",),
    "zipf": ("source.categories=100",),
    "text": ("source.corpus=stdlib", "source.vocab_size=32", "source.segment=16", "loop.samples=256"),
    "markov": ("source.vocab=32", "source.segment=16", "loop.samples=256"),
    "task": ("source.problems=8", "source.answers=5"),
    "arithmetic": ("source.digits=1", "metrics.heldout=20", "loop.samples=120"),
}
N_IMAGES, SIDE = 200, 8  # the array and idx sources read tiny files written here


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (C.CONF_DIR / group).glob("*.yaml"))


def _pairs() -> list[tuple[str, str]]:
    """(model, source) of every model yaml x source yaml: only the pairs a family spec can fit when the component
    specs exist for all of them (else every pair; the test skips those ``validate`` refuses with key ``model``)."""
    models, sources = _names("model"), _names("source")
    try:
        from collapse.components import specs

        fams, srcs = {s.name: s for s in specs("model")}, {s.name: s for s in specs("source")}
        if set(models) <= set(fams) and set(sources) <= set(srcs):
            return [(m, s) for m in models for s in sources if fams[m].can_fit(srcs[s])]
    except Exception:  # specs not (yet) declared by every component
        pass
    return [(m, s) for m in models for s in sources]


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> dict[str, tuple[str, ...]]:
    """Overrides pointing the array and idx sources at tiny files of N_IMAGES random SIDE x SIDE uint8 images."""
    root = tmp_path_factory.mktemp("contract_images")
    x = np.random.default_rng(0).integers(0, 256, (N_IMAGES, SIDE, SIDE), dtype=np.uint8)
    np.save(root / "images.npy", x)
    idx = root / "images.idx"
    idx.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", *x.shape) + x.tobytes())
    return {"array": (f"source.path={root / 'images.npy'}",),
            "idx": (f"source.images={idx}", "source.labels=null")}


def _build(model: str, source: str, extra: tuple[str, ...]):
    """(cfg, source, family) as a run builds them; skips a pair ``validate`` refuses for the model."""
    overrides = [f"model={model}", f"source={source}", *COMMON, *MODEL_TINY.get(model, ()),
                 *SOURCE_TINY.get(source, ()), *extra]
    cfg = C.compose(overrides)
    try:
        C.validate(cfg)
    except (C.ConfigError, errors.ConfigError) as exc:
        if exc.key == "model":
            pytest.skip(f"model={model} cannot fit source={source}")
        raise
    return cfg, overrides


@pytest.fixture(scope="module")
def lm_checkpoint(tmp_path_factory) -> tuple[str, ...]:
    """model=pretrained: a tiny random GPT-2 in the Hugging Face layout, with a BPE tokenizer of 300 ids."""
    from collapse.lm import hf_config, save_model
    from collapse.lm.tokenizer import train_bpe
    from collapse.lm.weights import build_model
    from collapse.text.corpus import load_text

    folder = tmp_path_factory.mktemp("contract_lm")
    train_bpe([load_text("stdlib")[:100_000]], 300, folder / "tokenizer.json")
    raw = {"architectures": ["GPT2LMHeadModel"], "vocab_size": 300, "n_embd": 16, "n_layer": 1, "n_head": 2,
           "n_positions": 16}
    save_model(build_model(hf_config.parse_config(raw)), folder)
    return (f"model.path={folder}", "model.steps=3", "model.batch=8", "model.warmup=1")


@pytest.mark.parametrize("model,source", _pairs())
def test_family_contract(model, source, image_files, request):
    extra = image_files.get(source, ()) + (request.getfixturevalue("lm_checkpoint") if model == "pretrained" else ())
    cfg, overrides = _build(model, source, extra)
    with precision_context(cfg):
        src = C.build_source(cfg)
        fam = C.build_family(cfg, src)
        units = batch_units(cfg, src)[0]
        report = assert_family_contract(fam, src, n=units)
    for core in ("layout", "init_structure", "mask_garbage", "mask_padding", "jit", "vmap", "scan", "determinism",
                 "key_dependence"):  # these apply to every family
        assert core in report.passed, f"{core} did not run: {report}"


# ----------------------------------------------------------------------------------------- broken families


@pytest.fixture(scope="module")
def gaussian_pair():
    from collapse.families.gaussian import gaussian
    from collapse.sources.continuous import gaussian as gaussian_source

    return gaussian(2), gaussian_source(2)


def _failure(report, check: str) -> str:
    assert check in report.failed, f"{check} should fail:\n{report}"
    return dict(zip(report.failed, report.failures))[check]


def test_contract_catches_an_ignored_mask(gaussian_pair):
    fam, src = gaussian_pair
    broken = dataclasses.replace(fam, fit=lambda k, b, m, p: fam.fit(k, b, jnp.ones_like(m), p))
    report = check_family(broken, src, checks=("mask_garbage", "mask_padding", "determinism"))
    assert "masked rows changed the fit" in _failure(report, "mask_garbage")
    assert "masked padding" in _failure(report, "mask_padding")
    assert report.passed == ["determinism"]
    with pytest.raises(AssertionError, match="mask_garbage"):
        assert_family_contract(broken, src, checks=("mask_garbage",))


def test_contract_catches_a_fixed_key_in_sample(gaussian_pair):
    fam, src = gaussian_pair
    from collapse.families.base import Family

    def sample(key, params, n, scale, covariates=None):
        return fam.sample(__import__("jax").random.key(0), params, n, scale, covariates)

    broken: Family = dataclasses.replace(fam, sample=sample)
    report = check_family(broken, src, checks=("key_dependence", "determinism", "layout"))
    assert "fixed key" in _failure(report, "key_dependence")
    assert report.passed == ["determinism", "layout"]


def test_contract_catches_init_unlike_fit(gaussian_pair):
    fam, src = gaussian_pair
    broken = dataclasses.replace(fam, init=lambda truth: {"mean": jnp.zeros(2), "cov": jnp.eye(2)})
    report = check_family(broken, src, checks=("init_structure", "layout"))
    assert "init vs fit" in _failure(report, "init_structure") and "chol" in _failure(report, "init_structure")
    wrong_dtype = dataclasses.replace(fam, init=lambda truth: {k: v.astype(jnp.int32) for k, v in
                                                               fam.init(truth).items()})
    assert "int32" in _failure(check_family(wrong_dtype, src, checks=("init_structure",)), "init_structure")


def test_report_lists_every_check(gaussian_pair):
    fam, src = gaussian_pair
    report = check_family(fam, src, checks=("probs", "transitions", "layout"))
    assert report.skipped == {"probs": "the family has no probs", "transitions": "the family has no transitions"}
    assert set(CHECKS) >= {c.name for c in report.checks}
    with pytest.raises(ValueError, match="unknown checks"):
        check_family(fam, src, checks=("no_such_check",))


def _offset_log_prob(fam, c):
    return dataclasses.replace(fam, log_prob=lambda p, x: fam.log_prob(p, x) + c)


def _scale_as_std(fam):
    return dataclasses.replace(fam, sample=lambda k, p, n, s, cov=None: fam.sample(k, p, n, s * s, cov))


def _merge_by_adding(fam):
    return dataclasses.replace(fam, merge_stats=lambda a, b: {k: a[k] + b[k] for k in a})


@pytest.mark.parametrize("break_it,check", [
    (lambda f: _offset_log_prob(f, 1.0), "gibbs_real"),  # log_prob too high: not normalised
    (lambda f: _offset_log_prob(f, -1.0), "gibbs_own"),  # too low
    (_scale_as_std, "scale"),  # sampling.scale applied to the standard deviation, not the covariance
    (_merge_by_adding, "merge_stats"),  # means added instead of pooled
])
def test_contract_catches_other_breakages(gaussian_pair, break_it, check):
    fam, src = gaussian_pair
    report = check_family(break_it(fam), src, checks=(check,))
    assert report.failed == [check], report
    assert check_family(fam, src, checks=(check,)).passed == [check]
