"""The ('data', 'model') device mesh and where every array lives on it.

The paper split AlexNet over two GPUs: each held one tower (half the kernels
of every layer), and the towers exchanged activations only at conv3, fc6,
fc7 and fc8. Here the mesh's 'model' axis plays the two GPUs and the 'data'
axis adds data parallelism on top:

    mesh (data=2, model=2)            model 0           model 1
                                  +---------------+ +---------------+
    data 0: images 0..B/2-1 ----> | tower 0       | | tower 1       |
                                  | conv1 LRN pool| | conv1 LRN pool|
                                  | conv2 LRN pool| | conv2 LRN pool|
                                  +-------+-------+ +-------+-------+
                                          +---- exchange ---+    conv3 input
                                  | conv3 conv4   | | conv3 conv4   |
                                  | conv5 pool    | | conv5 pool    |
                                          +---- exchange ---+    fc6, fc7, fc8 inputs
    data 1: images B/2..B-1: the same on the next two devices.

Parameters carry logical axis names (models.py); `LOGICAL_RULES` maps the
tower axis to 'model' and replicates everything else. Within-tower
convolutions run inside a `jax.shard_map` that is manual over both mesh
axes, so each device applies plain convolutions to its own tower and batch
shard: no collective over 'model' (a grouped convolution or `vmap` over
towers would be all-gathered by XLA's partitioner, see docs/model.md, "The two
towers"). Merged activations are pinned to the batch sharding, which is where
XLA inserts the exchange.

Nothing outside this module knows the mesh axis names.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax.errors import UserError
from alexnet_jax.models import loop_over_towers

MESH_AXES = ("data", "model")
LOGICAL_RULES = (
    ("tower", "model"),
    ("height", None),
    ("width", None),
    ("conv_in", None),
    ("conv_out", None),
    ("mlp_in", None),
    ("mlp_out", None),
)


class MeshError(UserError, ValueError):
    """The requested mesh does not fit the devices; the message says what would."""


def create_mesh(mesh_shape, devices=None) -> Mesh:
    """A ('data', 'model') mesh; one entry of `mesh_shape` may be -1 (all remaining devices).

    (-1, 1): pure data parallelism. (-1, 2): the paper's two-tower split,
    each data shard's two towers on neighbouring devices (the same host when
    the topology allows).
    """
    devices = jax.devices() if devices is None else devices
    shape = [int(n) for n in mesh_shape]
    count = len(devices)
    if len(shape) != 2 or shape.count(-1) > 1 or any(n == 0 or n < -1 for n in shape):
        raise MeshError(
            f"mesh_shape must be (data, model) with positive sizes and at most one -1, got {tuple(mesh_shape)}."
        )
    known = math.prod(n for n in shape if n != -1)
    if -1 in shape:
        if count % known:
            raise MeshError(
                f"mesh_shape {tuple(mesh_shape)} needs a multiple of {known} devices; there are {count}."
            )
        shape[shape.index(-1)] = count // known
    if math.prod(shape) != count:
        raise MeshError(
            f"mesh_shape {tuple(mesh_shape)} has {math.prod(shape)} devices but there are {count}; "
            f"use e.g. (-1, 1) or (-1, 2)."
        )
    return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 2, devices=devices)


def logical_shardings(mesh: Mesh, boxed_tree) -> Any:
    """NamedShardings for a tree whose leaves carry logical axis names (nn.LogicallyPartitioned)."""
    # optax keeps an empty MaskedNode in the optimizer state of a frozen parameter group, and Flax boxes it
    # with the parameter's axis names; it holds no array, so it gets no sharding either.
    boxed_tree = jax.tree.map(
        lambda x: (
            x.unbox()
            if isinstance(x, nn.meta.AxisMetadata) and not jax.tree.leaves(x.unbox())
            else x
        ),
        boxed_tree,
        is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata),
    )
    specs = nn.get_partition_spec(boxed_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_RULES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over 'data', replicated over 'model'."""
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def put_global(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A host array that every process holds in full, placed with `sharding` (across processes too)."""
    host = np.asarray(host)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put_replicated(value, mesh: Mesh) -> jax.Array:
    """The same host value on every device of the mesh, also across processes (where `device_put` refuses
    devices it cannot address). PRNG keys go in as key data and come out as keys."""
    is_key = jax.dtypes.issubdtype(getattr(value, "dtype", None), jax.dtypes.prng_key)
    host = np.asarray(jax.random.key_data(value) if is_key else value)
    array = put_global(host, replicated(mesh))
    return jax.random.wrap_key_data(array, impl=jax.random.key_impl(value)) if is_key else array


def sharded_tower_map(mesh: Mesh):
    """A `tower_map` placing tower t on 'model' index t (or both towers locally when 'model' has size 1).

    Inside a shard_map manual over both axes every device sees its own
    tower(s) and batch shard and runs plain convolutions on them.
    """

    def tower_map(fn, tower_params, x, x_per_tower):
        param_specs = tuple(P("model") for _ in tower_params)
        x_spec = P("model", "data") if x_per_tower else P("data")

        def local(*args):
            *params, x_local = args
            return loop_over_towers(fn, tuple(params), x_local, x_per_tower)

        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=param_specs + (x_spec,),
            out_specs=P("model", "data"),
            check_vma=False,
        )(*tower_params, x)

    return tower_map


def merged_constraint(mesh: Mesh):
    """Pins merged (N, ...) activations to the batch sharding: the towers' exchange point."""
    sharding = batch_sharding(mesh)
    return lambda x: jax.lax.with_sharding_constraint(x, sharding)


class BatchRows(NamedTuple):
    """The rows of every global batch that one process loads: those of the data shards its devices hold.

    A global batch of B rows over D data shards gives shard d the rows
    [d * B / D, (d + 1) * B / D). A process loads the rows of `shards`, in
    ascending order (on TPUs the shards of one host need not be neighbours).
    Processes whose devices hold the same shards form a group and load the
    same rows (the replicas of a shard must hold identical data); `group` is
    this process's group among `num_groups`, numbered by its first shard.
    Sources that cannot address rows directly (TFRecord streams, tfds
    evaluation splits) split their examples by group.
    """

    shards: tuple[int, ...]
    shard_size: int  # rows per data shard: B / D
    group: int = 0
    num_groups: int = 1

    @property
    def size(self) -> int:
        """Rows this process loads."""
        return len(self.shards) * self.shard_size

    @property
    def global_size(self) -> int:
        """Rows of the global batch, B."""
        return self.size * self.num_groups

    def indices(self) -> np.ndarray:
        """(size,) int64: the global batch rows this process loads, in the order it loads them."""
        return np.concatenate(
            [np.arange(d * self.shard_size, (d + 1) * self.shard_size) for d in self.shards]
        )

    @classmethod
    def whole(cls, global_batch_size: int) -> BatchRows:
        """Every row: a single process."""
        return cls((0,), global_batch_size)


def data_rows(mesh: Mesh, global_batch_size: int, process_index: int | None = None) -> BatchRows:
    """The rows of each global batch that a process must load for its devices of `mesh`.

    A device at 'data' index d holds rows [d * B / D, (d + 1) * B / D) of a
    batch of B over D data shards, whatever its 'model' index: a process
    loads the rows of the data shards its devices hold. With one device per
    process and mesh (-1, 2), the two processes holding a shard's two towers
    load the same rows. The processes must split the shards into groups of
    equal size: any two hold the same shards or none in common; other
    layouts are refused.
    """
    devices = np.asarray(mesh.devices)
    num_shards = devices.shape[MESH_AXES.index("data")]
    if global_batch_size % num_shards:
        raise MeshError(
            f"The global batch size {global_batch_size} does not divide among {num_shards} data shards of mesh "
            f"{dict(mesh.shape)}; use a multiple of {num_shards}."
        )
    held: dict[int, set[int]] = {}  # process -> the data shards its devices hold
    for data_index, row in enumerate(devices):
        for device in np.ravel(row):
            held.setdefault(int(device.process_index), set()).add(data_index)
    groups = sorted({tuple(sorted(shards)) for shards in held.values()})
    owners = [shard for group in groups for shard in group]
    if len(owners) != len(set(owners)) or len({len(group) for group in groups}) != 1:
        described = "; ".join(
            f"process {i}: {sorted(shards)}" for i, shards in sorted(held.items())
        )
        raise MeshError(
            f"The processes hold overlapping or unequal sets of the data shards of mesh {dict(mesh.shape)} "
            f"({described}), so they cannot split each batch. Use the same number of devices in every process, a "
            "multiple of the 'model' size (or one device per process), with mesh_shape (-1, 1) or (-1, 2)."
        )
    process = jax.process_index() if process_index is None else process_index
    if process not in held:
        raise MeshError(
            f"Process {process} has no device in mesh {dict(mesh.shape)}; every process must take part."
        )
    shards = tuple(sorted(held[process]))
    return BatchRows(shards, global_batch_size // num_shards, groups.index(shards), len(groups))


def host_batch_to_global(
    batch: dict[str, np.ndarray], mesh: Mesh, rows: BatchRows | None = None
) -> dict[str, jax.Array]:
    """This process's rows of a global batch -> global arrays sharded over 'data'.

    batch: arrays whose leading axis holds rows [rows.start, rows.stop) of
    the global batch (`data_rows`): `rows.indices()`, in that order.
    Without `rows` (one process only) the batch is the whole global batch.
    """
    if rows is None:
        if jax.process_count() > 1:
            raise ValueError(
                "host_batch_to_global needs this process's rows (data_rows) in a multi-process run"
            )
        rows = data_rows(mesh, len(next(iter(batch.values()))))
    sharding = batch_sharding(mesh)
    global_size = rows.global_size

    def put(value):
        value = np.asarray(value)
        if len(value) != rows.size:
            raise ValueError(
                f"expected {rows.size} rows of the global batch ({rows}), got {len(value)}"
            )

        def local(
            index,
        ):  # a device holds one data shard: rows [d * shard_size, (d + 1) * shard_size)
            wanted = index[0]
            start, stop = wanted.start or 0, global_size if wanted.stop is None else wanted.stop
            shard = start // rows.shard_size
            if shard not in rows.shards or stop - start != rows.shard_size:
                raise ValueError(
                    f"a device needs rows [{start}, {stop}) but this process loaded {rows}"
                )
            first = rows.shards.index(shard) * rows.shard_size
            return value[first : first + rows.shard_size]

        return jax.make_array_from_callback((global_size,) + value.shape[1:], sharding, local)

    return {key: put(value) for key, value in batch.items()}
