"""Where the replicate rows live: a 1-D mesh over every device of every process, and the way results come back to
the host without an on-device gather.

Device results are copied shard by shard (``Shard.data``) and assembled in NumPy. Indexing a sharded array on the
device instead (``x[rows]``) compiles a gather whose all-to-all collectives need every device's thread at once; on
a CPU host with more devices than cores (``--xla_force_host_platform_device_count``) those rendezvous can wait
forever. Across processes the rows of the other processes come through JAX's own
:func:`jax.experimental.multihost_utils.process_allgather` (every process calls it, in the same order).
"""
from __future__ import annotations

import jax
import numpy as np


def row_mesh() -> jax.sharding.Mesh | None:
    """The 1-D ``("replicate",)`` mesh over ``jax.devices()`` (all processes' devices), or None on one device."""
    devices = jax.devices()
    if len(devices) == 1:
        return None
    return jax.sharding.Mesh(np.asarray(devices), ("replicate",))


def put_rows(values: np.ndarray, mesh: jax.sharding.Mesh):
    """A global array of ``values`` (the same host array in every process) split over ``mesh`` along axis 0."""
    return put_like(values, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("replicate")))


def put_like(values: np.ndarray, sharding):
    """``values`` (a full host array, the same in every process) placed with ``sharding`` (e.g. a checkpointed
    state leaf back onto the mesh)."""
    values = np.asarray(values)
    return jax.make_array_from_callback(values.shape, sharding, lambda index: values[index])


def _assembled(x: jax.Array) -> np.ndarray:
    """A fully addressable array on the host, one device-to-host copy per shard (no device program)."""
    out = np.empty(x.shape, dtype=x.dtype)
    for shard in x.addressable_shards:
        out[shard.index] = np.asarray(shard.data)
    return out


def to_host(x) -> np.ndarray:
    """The whole of ``x`` as NumPy in this process. Arrays spread over several processes are gathered with
    ``process_allgather`` (a collective: every process must call this for the same arrays in the same order)."""
    if not isinstance(x, jax.Array):
        return np.asarray(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        raise TypeError("to_host takes key data, not keys: pass jax.random.key_data(keys)")
    if not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    if len(x.sharding.device_set) == 1:
        return np.asarray(x)
    return _assembled(x)


def host_rows(x, rows) -> np.ndarray:
    """Rows ``rows`` (an index array or an int along axis 0) of ``x`` on the host. On one device the rows are
    picked on the device first (less to copy); on several, from the host copy (see the module docstring)."""
    if isinstance(x, jax.Array) and x.is_fully_addressable and len(x.sharding.device_set) == 1:
        return np.asarray(x[rows])
    return to_host(x)[rows]

