"""The optimizer loop shared by the neural families (Transformer, VAE, diffusion), run inside the compiled
generation program.

``train`` takes ``steps`` AdamW steps (gradient clipped to global norm 1; learning rate warmed up linearly from 0
to ``lr`` over ``warmup`` steps, then cosine-decayed to lr / 10) on minibatches of ``batch`` rows drawn
uniformly with replacement from the rows of ``data`` whose ``mask`` is True (u ~ U{0..n_valid-1}, located by a
binary search in the cumulative mask: O(batch log n) per step, not O(batch n)). Float row weights in place of the
mask (``loop.real_weight``) draw row i with probability w_i / sum w, so each step's expected loss is the weighted
mean loss. Everything is a ``lax.scan``, so
replicates train together under ``vmap``.

Gradient accumulation (``accumulate`` = a > 1): each step draws a x ``batch`` rows and averages the gradients of
its a microbatches of ``batch`` rows, computed one after another (a ``lax.scan``), so activations are held for
``batch`` rows only: the same step, up to float rounding, as one batch of a x ``batch`` rows when the loss is a
mean over rows.
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
          opt: optax.GradientTransformation, accumulate: int = 1):
    """Minimise ``loss_fn(params, minibatch, key)``; returns (params, per-step losses (steps,))."""
    params, _, losses = train_more(loss_fn, params, opt.init(params), data, mask, key, steps, batch, opt, accumulate)
    return params, losses


def train_more(loss_fn: Callable[[Any, Any, Any], jax.Array], params, opt_state, data, mask, key, steps: int,
               batch: int, opt: optax.GradientTransformation, accumulate: int = 1):
    """``steps`` more optimizer steps from ``opt_state`` (the schedule goes on where it stopped), each on
    ``accumulate`` microbatches of ``batch`` rows; returns (params, opt_state, per-step losses (steps,))."""
    weighted = mask.dtype != jnp.bool_  # float row weights (loop.real_weight): rows drawn with p_i = w_i / sum w
    cum = jnp.cumsum(mask) if weighted else jnp.cumsum(mask.astype(jnp.int32))
    grad_fn = jax.value_and_grad(loss_fn)

    def accumulated(p, rows, k_loss):
        """Mean loss and gradient over the microbatches ``rows`` (accumulate, batch), one after another."""
        def grads_of(i):
            return grad_fn(p, jax.tree_util.tree_map(lambda x: x[rows[i]], data), jax.random.fold_in(k_loss, i))

        def micro(total, i):
            return jax.tree_util.tree_map(jnp.add, total, grads_of(i)), None

        total, _ = jax.lax.scan(micro, grads_of(0), jnp.arange(1, accumulate))
        return jax.tree_util.tree_map(lambda t: t / accumulate, total)

    def step(carry, k):
        p, state = carry
        k_rows, k_loss = jax.random.split(k)
        rows = (draw_weighted_rows if weighted else draw_rows)(k_rows, cum, batch * accumulate)
        if accumulate == 1:
            mb = jax.tree_util.tree_map(lambda x: x[rows], data)
            loss, grads = grad_fn(p, mb, k_loss)
        else:
            loss, grads = accumulated(p, rows.reshape(accumulate, batch), k_loss)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jax.random.split(key, steps))
    return params, opt_state, losses


def draw_rows(key, cum, n: int):
    """``n`` row indices uniform with replacement over the valid rows, given ``cum`` = cumsum(mask)."""
    u = jax.random.randint(key, (n,), 0, jnp.maximum(cum[-1], 1))
    return jnp.searchsorted(cum, u + 1, side="left")


def draw_weighted_rows(key, cum, n: int):
    """``n`` row indices with replacement, row i with probability w_i / sum(w), given ``cum`` = cumsum(w): the
    expected minibatch mean loss is then the weighted mean loss sum_i w_i loss_i / sum_i w_i."""
    u = jax.random.uniform(key, (n,), cum.dtype) * cum[-1]
    return jnp.minimum(jnp.searchsorted(cum, u, side="right"), cum.shape[0] - 1)


def tail_mean(losses, share: float = 0.1):
    """Mean of the last ``share`` of the per-step losses (the reported training loss)."""
    n = max(1, int(losses.shape[0] * share))
    return jnp.mean(losses[-n:])


def check_training(cfg, inits: tuple[str, ...] = ("scratch", "warm_start")) -> None:
    """The training keys every neural family owns: model.steps, batch, lr > 0, warmup >= 0, init (and
    accumulate >= 1 where the family has it)."""
    from collapse import checks

    checks.integer(cfg, "model.steps")
    checks.integer(cfg, "model.batch")
    if "accumulate" in cfg.model:
        checks.integer(cfg, "model.accumulate", allowed="must be an integer >= 1 (microbatches per optimizer step)")
    checks.number(cfg, "model.lr", 0.0, lo_open=True, allowed="must be a number > 0")
    checks.integer(cfg, "model.warmup", lo=0)
    checks.choice(cfg, "model.init", inits)
