"""Neural families on images and 2-D toys: losses fall, a digits run from the CLI with a sample grid per
generation, divergence handling, and one-line errors for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import collapse
from collapse.analysis import load_run
from collapse.cli import main as cli_main
from collapse.families.diffusion import diffusion
from collapse.families.vae import vae
from collapse.sources.images import load_digits_data
from collapse.sources.toy import ring


def _digits(n=512):
    x, _, _ = load_digits_data()
    return jnp.asarray(x[:n])


def _ring(n=1024):
    src = ring(8, 2.0, 0.1, tail_quantile_draws=10_000)
    return src.sample(jax.random.key(0), src.init(jax.random.key(0)), n)


@pytest.mark.parametrize("family,data", [
    (lambda steps: vae(64, latent=4, hidden=64, likelihood="bernoulli", steps=steps, batch=64, lr=2e-3), _digits),
    (lambda steps: vae(2, latent=2, hidden=64, likelihood="gaussian", steps=steps, batch=128, lr=2e-3), _ring),
    (lambda steps: diffusion(64, hidden=64, steps=steps, batch=64, lr=2e-3, bounded=True), _digits),
    (lambda steps: diffusion(2, hidden=64, steps=steps, batch=128, lr=2e-3, bounded=False), _ring),
], ids=["vae-digits", "vae-ring", "diffusion-digits", "diffusion-ring"])
def test_training_loss_falls(family, data):
    """The loss of the last 10% of 400 steps is well below the loss of the first 10 steps."""
    x = data()
    fam = family(400)
    from collapse.families.training import train

    params = fam.fit(jax.random.key(1), x, jnp.ones(len(x), bool), None)
    final = float(params["loss"])
    fam0 = family(10)
    early = float(fam0.fit(jax.random.key(1), x, jnp.ones(len(x), bool), None)["loss"])
    assert np.isfinite(final) and final < early - 0.1 * abs(early), (early, final)
    assert train is not None


def test_vae_warm_start_continues_from_the_previous_weights():
    x = _digits(256)
    fam = vae(64, latent=4, hidden=32, steps=50, batch=32, init="warm_start")
    p0 = fam.fit(jax.random.key(0), x, jnp.ones(256, bool), None)
    p1 = fam.fit(jax.random.key(1), x, jnp.ones(256, bool), p0)
    scratch = vae(64, latent=4, hidden=32, steps=50, batch=32, init="scratch")
    p2 = scratch.fit(jax.random.key(1), x, jnp.ones(256, bool), p0)
    assert float(p1["loss"]) < float(p2["loss"])  # 100 steps of training in total beat 50 from scratch


def test_sampling_scale_is_the_latent_or_noise_variance():
    fam = diffusion(2, hidden=16, steps=1, sampler_steps=1, bounded=False)
    params = fam.fit(jax.random.key(0), _ring(64), jnp.ones(64, bool), None)
    # zero the output layer: v = 0, so a sample is exactly the initial noise sqrt(scale) e
    params = jax.tree_util.tree_map(jnp.zeros_like, params)
    x = np.asarray(fam.sample(jax.random.key(1), params, 20000, 4.0, None))
    assert abs(x.var() - 4.0) < 4 * 4.0 * np.sqrt(2 / x.size)


def test_three_generation_digits_run_from_the_cli(tmp_path):
    args = ["source=digits", "model=vae", "generations=3", "replicates=2", "model.steps=100", "model.hidden=64",
            "metrics.eval_samples=100", "loop.real_fraction=0.2", "name=digits", "quiet=true"]
    p = subprocess.run([str(Path(sys.executable).parent / "collapse"), *args], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (run,) = [s.parent for s in (tmp_path / "runs" / "digits").rglob("summary.json")]
    df = load_run(run)
    assert len(df) == 6
    cols = ["nll_real", "frechet", "precision", "recall", "density", "coverage", "vendi", "class_tv", "train_loss"]
    assert np.isfinite(df[cols].to_numpy()).all(), df
    pngs = sorted(x.name for x in (run / "samples").iterdir())
    assert pngs == ["generation_0000.png", "generation_0001.png", "generation_0002.png"]
    assert all((run / "samples" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in pngs)
    s = json.loads((run / "summary.json").read_text())
    assert s["classifier_accuracy"] > 0.9 and s["data"]["images_fresh_used"] == 2 * 102
    from collapse.metrics.features import load_classifier
    assert load_classifier(run / "classifier.npz").accuracy == pytest.approx(s["classifier_accuracy"])
    assert "frechet" in p.stdout


def test_toy_ring_run_reports_mode_coverage_and_scatter_plots(tmp_path):
    res = collapse.simulate("source=ring", "model=diffusion", "generations=2", "replicates=2", "model.steps=200",
                            "model.hidden=64", "metrics.eval_samples=200", run_dir=tmp_path / "run")
    df = res.metrics
    assert {"mode_coverage", "mode_quality"} <= set(df.columns) and "class_tv" not in df.columns
    assert ((df["mode_coverage"] >= 0) & (df["mode_coverage"] <= 1)).all()
    assert len(list((tmp_path / "run" / "samples").glob("*.png"))) == 2


def test_a_diverging_model_gets_nan_metrics_and_an_event_and_the_run_finishes():
    res = collapse.simulate("source=ring", "model=vae", "generations=3", "replicates=2", "model.steps=20",
                            "model.lr=1e30", "model.warmup=0", "metrics.eval_samples=50")
    df = res.metrics
    assert df["train_loss"].isna().any()
    diverged = df[df["train_loss"].isna()]
    for r, g in diverged.groupby("replicate")["generation"].min().items():
        rows = df[(df["replicate"] == r) & (df["generation"] >= g)]
        assert rows["frechet"].isna().all() and rows["train_loss"].isna().all()  # NaN from then on
    ev = [e for e in res.summary["events"] if e["event"] == "diverged" and e["metric"] == "train_loss"]
    assert ev and ev[0]["replicates"] == diverged["replicate"].nunique()
    assert res.summary["status"] == "finished"


@pytest.mark.parametrize("args,key", [
    (["source=idx", "source.images=/no/such/images-idx3-ubyte.gz", "model=vae"], "source.images"),
    (["source=array", "source.path=NAN", "model=vae"], "source.path"),
    (["source=array", "source.path=PICKLE", "model=vae"], "source.path"),
    (["source=array", "source.path=NOTSQUARE", "model=vae"], "source.path"),
    (["source=digits", "model=vae", "model.latent=0"], "model.latent"),
    (["source=ring", "model=vae", "model.likelihood=bernoulli"], "model.likelihood"),
    (["source=digits", "model=gaussian"], "model"),
    (["source=digits", "model=vae", "loop.samples=5000"], "loop.samples"),
    (["source=digits", "model=diffusion", "loop.real_fraction=1", "generations=50"], "loop.real_fraction"),
    (["source=ring", "model=diffusion", "model.sampler_steps=0"], "model.sampler_steps"),
    (["source=ring", "model=diffusion", "model.init=gen0"], "model.init"),
])
def test_bad_image_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, key):
    np.save(tmp_path / "nan.npy", np.full((10, 8, 8), np.nan, np.float32))
    np.save(tmp_path / "pickle.npy", np.array([{"a": 1}] * 5, dtype=object), allow_pickle=True)
    np.save(tmp_path / "notsquare.npy", np.zeros((10, 7), np.float32))
    fix = {"NAN": "nan.npy", "PICKLE": "pickle.npy", "NOTSQUARE": "notsquare.npy"}
    args = [a.split("=", 1)[0] + "=" + (str(tmp_path / fix[a.split("=", 1)[1]]) if a.split("=", 1)[1] in fix
                                       else a.split("=", 1)[1]) for a in args]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli_main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("collapse: error: ") and key in err[0], err
    assert not (tmp_path / "runs").exists()
