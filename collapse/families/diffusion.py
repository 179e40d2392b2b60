"""Flow-matching diffusion model (rectified flow; Lipman et al. 2023, Liu et al. 2023) with an MLP velocity field
(Flax linen), trained with Optax inside the compiled generation loop.

Data are mapped to model space u = (x - shift) / spread (images in [0, 1]: u = 2x - 1; 2-D toys: u = x). With
noise e ~ N(0, I) and t ~ U(0, 1), u_t = (1 - t) u + t e, and the network v(u_t, t) (input u_t and a sinusoidal
embedding of t; ``hidden`` SiLU units, 3 layers) regresses the velocity e - u: loss = mean ||v - (e - u)||^2
per dimension. Sampling integrates du/dt = v from t = 1 (u_1 = sqrt(scale) e: ``sampling.scale`` is the
variance of the initial noise, MAD's sampling bias) to t = 0 with ``sampler_steps`` Euler steps, then maps back
(images are clipped to [0, 1]). No likelihood: ``log_prob`` is None (nll_real is not reported).
``init``: scratch | warm_start. Params: ``{"net": flax variables, "loss": mean loss of the last 10% of steps}``.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.run_settings import dtype_of
from collapse.families.base import Family
from collapse.families.training import adamw, check_training, tail_mean, train

TIME_FEATURES = 16


def time_embedding(t, dtype):
    """(n,) times in [0, 1] -> (n, 2 F) sin/cos features at frequencies 2^k pi, k = 0..F-1."""
    freqs = (2.0 ** jnp.arange(TIME_FEATURES, dtype=dtype)) * math.pi
    ang = t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], -1)


class VelocityNet(nn.Module):
    dim: int
    hidden: int
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, u, t):
        dt = dict(dtype=self.dtype, param_dtype=self.dtype)
        h = jnp.concatenate([u, time_embedding(t, u.dtype)], -1)
        for _ in range(3):
            h = nn.silu(nn.Dense(self.hidden, **dt)(h))
        return nn.Dense(self.dim, **dt)(h)


def diffusion(dim: int, hidden: int = 192, steps: int = 4000, batch: int = 128, lr: float = 3e-3, warmup: int = 50,
              sampler_steps: int = 32, init: str = "scratch", bounded: bool = True, dtype=jnp.float32) -> Family:
    """The ``diffusion`` family. ``bounded``: data in [0, 1] (images), mapped to [-1, 1] and clipped back."""
    net = VelocityNet(dim, hidden, dtype)
    opt = adamw(lr, steps, warmup)
    shift, spread = (0.5, 0.5) if bounded else (0.0, 1.0)

    def fresh(key):
        return net.init(key, jnp.zeros((1, dim), dtype), jnp.zeros((1,), dtype))

    def init_params(truth=None):
        return {"net": fresh(jax.random.key(0)), "loss": jnp.zeros((), dtype)}

    def loss_fn(variables, x, key):
        k_t, k_e = jax.random.split(key)
        u = (x - shift) / spread
        t = jax.random.uniform(k_t, (x.shape[0],), dtype)
        e = jax.random.normal(k_e, u.shape, dtype)
        ut = (1 - t[:, None]) * u + t[:, None] * e
        return jnp.mean((net.apply(variables, ut, t) - (e - u)) ** 2)

    def fit(key, data, mask, prev):
        k_init, k_steps = jax.random.split(key)
        start = fresh(k_init) if (prev is None or init == "scratch") else prev["net"]
        variables, losses = train(loss_fn, start, data, mask, k_steps, steps, batch, opt)
        return {"net": variables, "loss": tail_mean(losses).astype(dtype)}

    def sample(key, params, n, scale, covariates):
        u = jnp.sqrt(scale) * jax.random.normal(key, (n, dim), dtype)
        h = 1.0 / sampler_steps

        def euler(u, i):
            t = jnp.full((n,), 1.0 - i * h, dtype)
            return u - h * net.apply(params["net"], u, t), None

        u, _ = jax.lax.scan(euler, u, jnp.arange(sampler_steps, dtype=dtype))
        x = u * spread + shift
        return jnp.clip(x, 0.0, 1.0) if bounded else x

    return Family("diffusion", ("image", "continuous"), init_params, fit, sample, log_prob=None, trains=True, weights=True)


def check(cfg, source: SourceSpec) -> None:
    """model.sampler_steps, hidden and the training keys."""
    checks.integer(cfg, "model.sampler_steps")
    checks.integer(cfg, "model.hidden")
    check_training(cfg)


def build(cfg, source) -> Family:
    m = cfg.model
    return diffusion(source.dim, hidden=m.hidden, steps=m.steps, batch=m.batch, lr=float(m.lr), warmup=m.warmup,
                     sampler_steps=m.sampler_steps, init=m.init, bounded=source.kind == "image", dtype=dtype_of(cfg))


FAMILY = FamilySpec("diffusion", fits=("image", "toy_2d"), check=check, build=build)
