"""The optimizer loop shared by the neural families (Transformer, VAE, diffusion), run inside the compiled
generation program.

``train`` takes ``steps`` AdamW steps (gradient clipped to global norm 1; learning rate warmed up linearly from 0
to ``lr`` over ``warmup`` steps, then cosine-decayed to lr / 10) on minibatches of ``batch`` rows drawn
uniformly with replacement from the rows of ``data`` whose ``mask`` is True (u ~ U{0..n_valid-1}, located by a
binary search in the cumulative mask: O(batch log n) per step, not O(batch n)). Everything is a ``lax.scan``, so
replicates train together under ``vmap``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


def adamw(lr: float, steps: int, warmup: int, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """Clipped AdamW with linear warm-up and cosine decay to lr / 10 over ``steps``."""
    warm = min(warmup, steps - 1)
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warm, max(steps, warm + 1), lr / 10)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=weight_decay))


def train(loss_fn: Callable[[Any, Any, Any], jax.Array], params, data, mask, key, steps: int, batch: int,
          opt: optax.GradientTransformation):
    """Minimise ``loss_fn(params, minibatch, key)``; returns (params, per-step losses (steps,))."""
    params, _, losses = train_more(loss_fn, params, opt.init(params), data, mask, key, steps, batch, opt)
    return params, losses


def train_more(loss_fn: Callable[[Any, Any, Any], jax.Array], params, opt_state, data, mask, key, steps: int,
               batch: int, opt: optax.GradientTransformation):
    """``steps`` more optimizer steps from ``opt_state`` (the schedule goes on where it stopped); returns
    (params, opt_state, per-step losses (steps,))."""
    cum = jnp.cumsum(mask.astype(jnp.int32))  # rows u + 1 of the valid ones: first index with cum >= u + 1

    def step(carry, k):
        p, state = carry
        k_rows, k_loss = jax.random.split(k)
        rows = draw_rows(k_rows, cum, batch)
        mb = jax.tree_util.tree_map(lambda x: x[rows], data)
        loss, grads = jax.value_and_grad(loss_fn)(p, mb, k_loss)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jax.random.split(key, steps))
    return params, opt_state, losses


def draw_rows(key, cum, n: int):
    """``n`` row indices uniform with replacement over the valid rows, given ``cum`` = cumsum(mask)."""
    u = jax.random.randint(key, (n,), 0, jnp.maximum(cum[-1], 1))
    return jnp.searchsorted(cum, u + 1, side="left")


def tail_mean(losses, share: float = 0.1):
    """Mean of the last ``share`` of the per-step losses (the reported training loss)."""
    n = max(1, int(losses.shape[0] * share))
    return jnp.mean(losses[-n:])


def check_training(cfg, inits: tuple[str, ...] = ("scratch", "warm_start")) -> None:
    """The training keys every neural family owns: model.steps, batch, lr > 0, warmup >= 0, init."""
    from collapse import checks

    checks.integer(cfg, "model.steps")
    checks.integer(cfg, "model.batch")
    checks.number(cfg, "model.lr", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.integer(cfg, "model.warmup", lo=0)
    checks.choice(cfg, "model.init", inits)
