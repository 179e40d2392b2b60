"""A small classifier trained once on a finite labelled image source, giving the feature space of the image
metrics (the role Inception-v3 plays for FID, at the scale of 8x8 digits).

The model is an MLP  D -> hidden (relu) -> feature_dim (relu) -> classes  (Flax linen), trained on the host
side with Adam on the cross-entropy for a fixed number of steps; minibatches are drawn with replacement
from a fixed key, and the whole loop is one jitted ``lax.scan``, so training is deterministic given the data
and the seed. :func:`features` (the penultimate activations) and :func:`predict` are pure functions of the
parameters, usable inside ``jit`` and ``vmap``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["Classifier", "train_classifier", "features", "logits", "predict", "save_classifier",
           "load_classifier"]


class MLP(nn.Module):
    hidden: int
    feature_dim: int
    classes: int

    def setup(self):
        self.hidden_layer = nn.Dense(self.hidden, name="hidden")
        self.feature_layer = nn.Dense(self.feature_dim, name="feature")
        self.head = nn.Dense(self.classes, name="head")

    def features(self, x):
        return nn.relu(self.feature_layer(nn.relu(self.hidden_layer(x))))

    def __call__(self, x):
        return self.head(self.features(x))


@dataclass(frozen=True)
class Classifier:
    params: Any  # the Flax variables {"params": {"hidden"|"feature"|"head": {"kernel", "bias"}}}
    accuracy: float  # accuracy on the test set given to train_classifier
    classes: int
    feature_dim: int


def _flat(x):
    """(n, ...) images -> (n, D) float rows."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x.reshape(x.shape[0], -1)


def _module(params) -> MLP:
    """The module matching ``params`` (sizes read from the static kernel shapes)."""
    p = params["params"]
    return MLP(hidden=p["hidden"]["kernel"].shape[1], feature_dim=p["feature"]["kernel"].shape[1],
               classes=p["head"]["kernel"].shape[1])


def features(params, x):
    """Penultimate (feature_dim) relu activations of the rows of ``x`` (n, D) or images (n, ...):
    (n, feature_dim), in the parameters' dtype."""
    x = _flat(x)
    return _module(params).apply(params, x.astype(params["params"]["hidden"]["kernel"].dtype),
                                 method=MLP.features)


def logits(params, x):
    """Class logits (n, classes)."""
    x = _flat(x)
    return _module(params).apply(params, x.astype(params["params"]["hidden"]["kernel"].dtype))


def predict(params, x):
    """Predicted labels argmax logits, (n,) int32."""
    return jnp.argmax(logits(params, x), axis=-1).astype(jnp.int32)


def train_classifier(x_train, y_train, x_test, y_test, classes: int, hidden: int = 128, feature_dim: int = 64,
                     steps: int = 2000, batch: int = 128, lr: float = 1e-3, seed: int = 0) -> Classifier:
    """Train the MLP on (``x_train`` (n, ...), ``y_train`` (n,) ints in [0, classes)) with Adam(``lr``) on the
    mean cross-entropy, ``steps`` minibatches of ``batch`` rows drawn with replacement (keys from ``seed``);
    report accuracy on (``x_test``, ``y_test``). Parameters are float32."""
    xt = _flat(x_train).astype(jnp.float32)
    yt = jnp.asarray(y_train, jnp.int32)
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(f"x_train has {xt.shape[0]} rows, y_train {yt.shape[0]}")
    model = MLP(hidden=int(hidden), feature_dim=int(feature_dim), classes=int(classes))
    k_init, k_batches = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(k_init, xt[:1])
    opt = optax.adam(lr)

    def loss_fn(p, xb, yb):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model.apply(p, xb), yb))

    @jax.jit
    def fit(params, xs, ys):  # the data as arguments, not as constants baked into the program
        def step(carry, k):
            p, s = carry
            idx = jax.random.randint(k, (batch,), 0, xs.shape[0])
            grads = jax.grad(loss_fn)(p, xs[idx], ys[idx])
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None

        (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(k_batches, steps))
        return p

    params = jax.block_until_ready(fit(params, xt, yt))
    acc = float(jnp.mean(predict(params, x_test) == jnp.asarray(y_test, jnp.int32)))
    return Classifier(params=params, accuracy=acc, classes=int(classes), feature_dim=int(feature_dim))


# --------------------------------------------------------------------------------------- persistence

_META = ("__accuracy__", "__classes__", "__feature_dim__")


def save_classifier(clf: Classifier, path) -> None:
    """Write ``clf`` to an ``.npz``: one array per parameter leaf, keyed by its tree path joined with "/"
    (e.g. "params/hidden/kernel"), plus the scalars accuracy, classes and feature_dim. No pickled objects."""
    arrays = {}
    for keypath, leaf in jax.tree_util.tree_flatten_with_path(clf.params)[0]:
        name = "/".join(str(k.key) for k in keypath)
        arrays[name] = np.asarray(leaf)
    arrays["__accuracy__"] = np.asarray(clf.accuracy, np.float64)
    arrays["__classes__"] = np.asarray(clf.classes, np.int64)
    arrays["__feature_dim__"] = np.asarray(clf.feature_dim, np.int64)
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
        np.savez(f, **arrays)


def load_classifier(path) -> Classifier:
    """Read a :func:`save_classifier` file (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as z:
        params: dict = {}
        for name in z.files:
            if name in _META:
                continue
            *parents, leaf = name.split("/")
            node = params
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = jnp.asarray(z[name])
        return Classifier(params=params, accuracy=float(z["__accuracy__"]), classes=int(z["__classes__"]),
                          feature_dim=int(z["__feature_dim__"]))
