"""Durable progress of a running experiment, so a killed run resumes where it stopped.

Layout: ``<run dir>/checkpoint/`` holds, per replicate group ``i``, ``group<i>.npz`` (the chain state after the
last saved chunk of generations — model parameters, RNG keys, data pools, running statistics —, the metric rows
so far, and its own progress: the config digest, chunks done, finished) and ``progress.json``
(``{"digest": ..., "groups": {"<i>": {"chunks_done": c, "finished": bool}}}``), an index for people and tools,
written after it. Every file is written to a temporary name, flushed, fsync'ed and renamed, so a crash (even
SIGKILL) leaves the previous durable state intact. Resuming reads the progress from the group file itself, so a
crash between the two renames (a new group file, an old index) still resumes from the state and rows that file
holds, never from a mix of two chunks. The arrays are plain ``.npz`` read with ``allow_pickle=False``; RNG keys are
stored as their raw key data. Resuming re-enters the same compiled program with the same state, so the metrics
equal those of an uninterrupted run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np

from collapse.placement import put_like, to_host

ROWS = "rows::"
STATE = "state::"
MODELS = "models::"
META = "meta::"  # the group file's own progress: digest, chunks_done, finished


class CheckpointError(OSError):
    """A checkpoint could not be written (full disk, unwritable folder): the previous durable one is intact."""


def _path_str(path) -> str:
    return "/".join(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)


def _fsync_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Checkpointer:
    """Saves every ``every`` generations (at chunk ends) into ``folder``; ``digest`` identifies the config."""

    def __init__(self, folder: str | os.PathLike, every: int, digest: str, writer: bool = True):
        """``writer``: whether this process writes the files (process 0 of a multi-process run; every process
        gathers the state and reads the files, see :mod:`collapse.distributed`)."""
        self.models: dict = {}  # the kept models of the group loaded last (``load``)
        self.folder, self.every, self.digest, self.writer = Path(folder), int(every), digest, writer
        self.progress: dict[str, Any] = {"digest": digest, "groups": {}}
        f = self.folder / "progress.json"
        if f.is_file():
            saved = json.loads(f.read_text())
            if saved.get("digest") == digest:
                self.progress = saved

    # ----- saving --------------------------------------------------------------------------------------------
    def due(self, gens_since_save: int, last_chunk: bool) -> bool:
        return self.every > 0 and not last_chunk and gens_since_save >= self.every

    def save(self, group: int, chunks_done: int, state, rows: list[dict], finished: bool = False,
             models: dict | None = None) -> None:
        """``models``: {(generation, replicate): params} kept with a finished group (``export.generations``)."""
        arrays: dict[str, np.ndarray] = {}
        for (g, r), params in (models or {}).items():
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
                arrays[f"{MODELS}{g}::{r}::{_path_str(path)}"] = to_host(leaf)
        if state is not None:
            for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
                arr = jax.random.key_data(leaf) if _is_key(leaf) else leaf
                arrays[STATE + _path_str(path)] = to_host(arr)
        for k in rows[0]:
            arrays[ROWS + k] = np.concatenate([r[k] for r in rows], axis=1)
        arrays[META + "digest"] = np.array(self.digest)
        arrays[META + "chunks_done"] = np.array(chunks_done, dtype=np.int64)
        arrays[META + "finished"] = np.array(finished)
        if not self.writer:  # the gathers above are collectives every process joins; one process writes
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _fsync_write(self.folder / f"group{group}.npz", lambda fh: np.savez(fh, **arrays))
            self.progress["groups"][str(group)] = {"chunks_done": chunks_done, "finished": finished}
            body = json.dumps(self.progress, indent=1).encode()
            _fsync_write(self.folder / "progress.json", lambda fh: fh.write(body))
        except OSError as exc:
            raise CheckpointError(f"cannot write a checkpoint in {self.folder} ({exc.strerror or exc}); the last "
                                  "durable checkpoint is intact") from None

    # ----- loading -------------------------------------------------------------------------------------------
    def load(self, group: int, state_shape) -> Optional[tuple[int, bool, Any, dict]]:
        """(chunks_done, finished, state or None, rows {name: (replicates, kept so far)}) of ``group``, or None.

        The progress comes from the group file itself (``progress.json`` may lag it by one save after a crash);
        a group file of another config (another digest) is not this run's and is ignored."""
        f = self.folder / f"group{group}.npz"
        if not f.is_file():
            return None
        with np.load(f, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
        if META + "chunks_done" in stored:
            if str(stored[META + "digest"]) != self.digest:
                return None
            info = {"chunks_done": int(stored[META + "chunks_done"]), "finished": bool(stored[META + "finished"])}
        else:  # written before group files carried their progress: the index is all there is
            info = self.progress["groups"].get(str(group))
            if info is None:
                return None
        self.progress["groups"][str(group)] = info
        rows = {k[len(ROWS):]: v for k, v in stored.items() if k.startswith(ROWS)}
        self._check_layout(group, stored, rows, state_shape, info["finished"])
        self.models = self._models(stored, state_shape)
        state = None
        if not info["finished"]:
            flat, tree = jax.tree_util.tree_flatten_with_path(state_shape)
            leaves = []
            for path, shape in flat:
                arr = stored[STATE + _path_str(path)]
                sharding = getattr(shape, "sharding", None)
                arr = arr if _is_key(shape) else arr.astype(shape.dtype)
                leaf = put_like(arr, sharding) if sharding is not None else jax.numpy.asarray(arr)
                if _is_key(shape):
                    leaf = jax.random.wrap_key_data(leaf)  # keys come from jax.random.key: the default impl
                leaves.append(leaf)
            state = jax.tree_util.tree_unflatten(tree, leaves)
        return info["chunks_done"], info["finished"], state, rows

    def _models(self, stored: dict, state_shape) -> dict:
        """{(generation, replicate): params} saved with a finished group, rebuilt in the structure of the chain
        state's params."""
        found = sorted({tuple(int(x) for x in k[len(MODELS):].split("::", 2)[:2]) for k in stored
                        if k.startswith(MODELS)})
        if not found or not isinstance(state_shape, dict) or "params" not in state_shape:
            return {}
        flat, tree = jax.tree_util.tree_flatten_with_path(state_shape["params"])
        return {(g, r): jax.tree_util.tree_unflatten(tree, [stored[f"{MODELS}{g}::{r}::{_path_str(p)}"]
                                                          for p, _ in flat]) for g, r in found}

    def _check_layout(self, group: int, stored: dict, rows: dict, state_shape, finished: bool) -> None:
        """Refuse a checkpoint whose replicate group or chain state differ from this run's programs (written by
        another version of collapse, which grouped replicates or carried state differently)."""
        flat = jax.tree_util.tree_flatten_with_path(state_shape)[0]
        n = flat[0][1].shape[0] if flat else None
        wrong_rows = sorted(k for k, v in rows.items() if not k.startswith("_") and v.shape[0] != n)
        missing = [] if finished else sorted(STATE + _path_str(p) for p, _ in flat if STATE + _path_str(p) not in stored)
        if wrong_rows or missing:
            what = (f"{len(missing)} state entries missing, e.g. {missing[0][len(STATE):]!r}" if missing else
                    f"rows of {wrong_rows[0]!r}: {rows[wrong_rows[0]].shape[0]}, this run's group has {n}")
            raise CheckpointError(f"{self.folder} holds a checkpoint of replicate group {group} in another layout "
                                  f"({what}): written by another version of collapse; delete that folder to run "
                                  "the experiment from the start")
