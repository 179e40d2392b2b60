"""Variational autoencoder (Kingma & Welling 2014) with MLP encoder and decoder (Flax linen), trained with Optax.

Model: z ~ N(0, I_latent); encoder x -> hidden -> hidden (ReLU) -> (mu, log sigma^2) of q(z | x); decoder
z -> hidden -> hidden (ReLU) -> D outputs. Likelihood (``likelihood``):
- ``bernoulli`` (data in [0, 1], e.g. images): outputs are logits, log p(x | z) = sum_i x_i log s_i + (1 - x_i)
  log(1 - s_i) with s = sigmoid(logits) (the usual binary cross-entropy, also for grey levels);
- ``gaussian``: outputs are means, with a learned per-dimension log standard deviation.
Loss (nats per example): the negative ELBO  -E_q[log p(x | z)] + KL(q(z | x) || N(0, I)), one reparameterised
draw per example, averaged over a minibatch; ``steps`` AdamW steps on ``batch`` rows (see ``training.py``).

Sampling with ``sampling.scale`` = s (the latent temperature, MAD's sampling bias): z ~ N(0, s I), then
``bernoulli``: the decoder's pixel means sigmoid(logits) (grey images in [0, 1]); ``gaussian``: mean + sigma eps.
``log_prob`` returns the ELBO per example (one draw from a fixed key), so nll_real = -ELBO, an upper bound on
the negative log-likelihood. ``init``: scratch (new weights each generation) | warm_start (from g-1).
Params: ``{"net": flax variables, "loss": mean loss of the last 10% of steps}``.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.errors import ConfigError
from collapse.run_settings import dtype_of
from collapse.families.base import Family
from collapse.families.training import adamw, check_training, tail_mean, train


class VAENet(nn.Module):
    dim: int
    latent: int
    hidden: int
    gaussian: bool
    dtype: object = jnp.float32

    def setup(self):
        dt = dict(dtype=self.dtype, param_dtype=self.dtype)
        self.enc = [nn.Dense(self.hidden, **dt), nn.Dense(self.hidden, **dt), nn.Dense(2 * self.latent, **dt)]
        self.dec = [nn.Dense(self.hidden, **dt), nn.Dense(self.hidden, **dt), nn.Dense(self.dim, **dt)]
        self.log_sigma = self.param("log_sigma", nn.initializers.zeros, (self.dim,), self.dtype)

    def encode(self, x):
        h = nn.relu(self.enc[1](nn.relu(self.enc[0](x))))
        mu, logvar = jnp.split(self.enc[2](h), 2, axis=-1)
        return mu, jnp.clip(logvar, -12.0, 8.0)

    def decode(self, z):
        return self.dec[2](nn.relu(self.dec[1](nn.relu(self.dec[0](z)))))

    def elbo(self, x, key):
        """Per-example ELBO (nats), one reparameterised draw."""
        mu, logvar = self.encode(x)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, mu.dtype)
        out = self.decode(z)
        if self.gaussian:
            ls = self.log_sigma
            rec = -0.5 * jnp.sum(((x - out) / jnp.exp(ls)) ** 2 + 2 * ls + math.log(2 * math.pi), -1)
        else:
            rec = -jnp.sum(_bce(out, x), -1)
        kl = 0.5 * jnp.sum(jnp.exp(logvar) + mu**2 - 1.0 - logvar, -1)
        return rec - kl

    def __call__(self, x, key):
        return self.elbo(x, key)


def _bce(logits, x):
    """Binary cross-entropy with logits: -[x log s + (1 - x) log(1 - s)], s = sigmoid(logits)."""
    return jnp.logaddexp(0.0, logits) - x * logits


def vae(dim: int, latent: int = 8, hidden: int = 256, likelihood: str = "bernoulli", steps: int = 2000,
        batch: int = 128, lr: float = 3e-3, warmup: int = 50, init: str = "scratch", dtype=jnp.float32) -> Family:
    """The ``vae`` family (see the module docstring)."""
    net = VAENet(dim, latent, hidden, likelihood == "gaussian", dtype)
    opt = adamw(lr, steps, warmup)

    def fresh(key):
        return net.init(key, jnp.zeros((1, dim), dtype), jax.random.key(0))

    def init_params(truth=None):
        return {"net": fresh(jax.random.key(0)), "loss": jnp.zeros((), dtype)}

    def fit(key, data, mask, prev):
        k_init, k_steps = jax.random.split(key)
        start = fresh(k_init) if (prev is None or init == "scratch") else prev["net"]
        variables, losses = train(lambda v, x, k: -jnp.mean(net.apply(v, x, k)), start, data, mask, k_steps, steps,
                                  batch, opt)
        return {"net": variables, "loss": tail_mean(losses).astype(dtype)}

    def sample(key, params, n, scale, covariates):
        k_z, k_x = jax.random.split(key)
        z = jnp.sqrt(scale) * jax.random.normal(k_z, (n, latent), dtype)
        out = net.apply(params["net"], z, method=VAENet.decode)
        if likelihood == "gaussian":
            sigma = jnp.exp(params["net"]["params"]["log_sigma"])
            return out + sigma * jax.random.normal(k_x, out.shape, dtype)
        return jax.nn.sigmoid(out)

    def log_prob(params, x):
        return net.apply(params["net"], x, jax.random.key(0))

    return Family("vae", ("image", "continuous"), init_params, fit, sample, log_prob, trains=True, weights=True)


def check(cfg, source: SourceSpec) -> None:
    """model.latent, hidden, likelihood (bernoulli needs data in [0, 1]: an image source) and the training keys."""
    checks.integer(cfg, "model.latent", allowed="must be an integer >= 1 (the latent size)")
    lik = checks.choice(cfg, "model.likelihood", ("auto", "bernoulli", "gaussian"))
    if lik == "bernoulli" and source.kind != "image":
        raise ConfigError("model.likelihood", lik, f"needs data in [0, 1] (an image source); source={source.name} "
                          "is unbounded: use gaussian or auto")
    checks.integer(cfg, "model.hidden")
    check_training(cfg)


def build(cfg, source) -> Family:
    m = cfg.model
    lik = m.likelihood if m.likelihood != "auto" else ("bernoulli" if source.kind == "image" else "gaussian")
    return vae(source.dim, latent=m.latent, hidden=m.hidden, likelihood=lik, steps=m.steps, batch=m.batch,
               lr=float(m.lr), warmup=m.warmup, init=m.init, dtype=dtype_of(cfg))


FAMILY = FamilySpec("vae", fits=("image", "toy_2d"), check=check, build=build)
