"""The ('data', 'model') mesh: towers talk only where the paper's GPUs did; a sharded step equals a 1-device step.

The communication test reads the collectives out of the compiled HLO of the
paper model's train step on a (4, 2) mesh (8 fake CPU devices, conftest.py)
with reference/hlo.py and attributes each by the mesh axis its replica groups
span and the layer names in its `op_name`. A control built with grouped convolutions
(`vmap_over_towers`) must fail the same check, so the check can fail.
"""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from helpers import largest_difference

from alexnet_jax import models, sharding, steps
from configs import default
from reference.hlo import Collective, collectives, parse_groups

BATCH = 8
MESH = (4, 2)  # ('data', 'model')

# ---------------------------------------------------------------------------
# Reading collectives out of compiled HLO (reference/hlo.py)


# The groups XLA printed for the paper step on make_mesh((4, 2)), where 'model' groups are {0,1},{2,3},...
@pytest.mark.parametrize(
    "spelling, axis",
    [
        ("replica_groups={{0,1},{2,3},{4,5},{6,7}}, use_global_device_ids=true", "model"),
        ("replica_groups={{0,2,4,6},{1,3,5,7}}, use_global_device_ids=true", "data"),
        ("replica_groups=[2,4]<=[4,2]T(1,0), use_global_device_ids=true", "data"),
        ("replica_groups=[4,2]<=[8], use_global_device_ids=true", "model"),
        (
            "replica_groups=mesh['axis_0'=4,'axis_1'=1,'axis_2'=1,'axis_3'=2,'axis_4'=1] {'axis_3'}, dimensions={3}",
            "model",
        ),
        (
            "replica_groups=mesh['axis_0'=4,'axis_1'=1,'axis_2'=1,'axis_3'=2] {'axis_0'}, dimensions={0}",
            "data",
        ),
        (
            "replica_groups=mesh['axis_0'=2,'axis_1'=1,'axis_2'=1,'axis_3'=1,'axis_4'=1,'axis_5'=4], "
            "device_ids=([4,2]T(1,0)) {'axis_0'}, use_global_device_ids=true",
            "model",
        ),
        (
            "replica_groups=mesh['axis_0'=2,'axis_1'=4,'axis_2'=1,'axis_3'=1,'axis_4'=1], "
            "device_ids=([4,2]T(1,0)) {'axis_1'}, use_global_device_ids=true",
            "data",
        ),
    ],
)
def test_replica_group_spellings(spelling, axis):
    mesh = sharding.create_mesh(MESH)
    line = (
        f'  %x = f32[2]{{0}} all-reduce(%y), channel_id=1, {spelling}, metadata={{op_name="a/b"}}'
    )
    (found,) = collectives(line, mesh)
    assert found.axes == {axis}
    expected = {"model": [[0, 1], [2, 3], [4, 5], [6, 7]], "data": [[0, 2, 4, 6], [1, 3, 5, 7]]}[
        axis
    ]
    assert sorted(sorted(g) for g in parse_groups(line, 8)) == expected


# ---------------------------------------------------------------------------
# Where the towers talk

CROSS_TOWER_LAYERS = {"conv3", "fc6", "fc7", "fc8"}  # see both towers' maps in the paper (figure 2)
WITHIN_TOWER_LAYERS = {"conv1", "conv2", "conv4", "conv5"}
# (local batch, merged width) of each merge all-gather: pool2 output 13x13x(2x128), pool5 6x6x(2x128), fc6 out 2x2048.
MERGES = {"conv3": 13 * 13 * 256, "fc6": 6 * 6 * 256, "fc7": 4096}


def paper_config(**overrides):
    config = default.get_config()
    config.model = "paper"
    config.towers = 2
    config.image_size = 224
    config.num_classes = 10  # the head's size does not change where towers talk; saves memory
    config.batch_size = BATCH
    for key, value in overrides.items():
        config[key] = value
    return config


def compiled_train_hlo(model, config, mesh) -> str:
    """The compiled train step's HLO, lowered on abstract (sharded) inputs: nothing is allocated."""
    tx = steps.create_optimizer(config, steps_per_epoch=10, total_steps=100)
    abstract, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    size, batch_sharding = config.image_size, sharding.batch_sharding(mesh)
    batch = {
        "image": jax.ShapeDtypeStruct((BATCH, size, size, 3), np.float32, sharding=batch_sharding),
        "label": jax.ShapeDtypeStruct((BATCH,), np.int32, sharding=batch_sharding),
        "mask": jax.ShapeDtypeStruct((BATCH,), np.bool_, sharding=batch_sharding),
    }
    return p_train.lower(state, batch, jax.random.key(0)).compile().as_text()


def tower_talk_problems(ops: list[Collective], local_batch: int) -> list[str]:
    """Why `ops` are not the paper's communication pattern; [] when they are."""
    problems = []
    for op in ops:
        if "data" in op.axes and op.opcode != "all-reduce":
            problems.append(f"{op.opcode} over 'data' (batch replicated?): {op.op_name}")
        if "model" not in op.axes:
            continue
        layers = op.tokens & (CROSS_TOWER_LAYERS | WITHIN_TOWER_LAYERS)
        suspicious = {
            t for t in op.tokens if re.search(r"lrn|pool|reduce_window|dropout", t, re.IGNORECASE)
        }
        is_merge = op.opcode == "all-gather" and op.op_name.endswith("/reshape")
        # optax.global_norm of tower-sharded gradients (the grad_norm metric): scalar partial sums, no layer name.
        is_norm = all(shape == () for shape in op.shapes) and not layers
        if layers & WITHIN_TOWER_LAYERS or suspicious:
            problems.append(f"{op.opcode} over 'model' in a within-tower layer: {op.op_name}")
        elif not (layers or is_merge or is_norm):
            problems.append(
                f"{op.opcode} over 'model' not attributable to {sorted(CROSS_TOWER_LAYERS)}: {op.op_name}"
            )
    merges = {}
    for op in ops:
        if "model" in op.axes and op.opcode == "all-gather" and op.op_name.endswith("/reshape"):
            (shape,) = op.shapes
            # the whole merged activation of the local batch, no more
            size = int(np.prod(shape)) // local_batch
            layer = next(
                (name for name, width in MERGES.items() if width == size), f"unknown merge {shape}"
            )
            merges[layer] = merges.get(layer, 0) + 1
    if merges != dict.fromkeys(MERGES, 1):
        problems.append(
            f"expected one merge all-gather each in front of {sorted(MERGES)}, got {merges}"
        )
    return problems


def test_towers_talk_only_at_conv3_fc6_fc7_fc8():
    mesh = sharding.create_mesh(MESH)
    config = paper_config()
    ops = collectives(compiled_train_hlo(steps.create_model(config, mesh), config, mesh), mesh)
    assert tower_talk_problems(ops, BATCH // MESH[0]) == []
    # The 'model' collectives, pinned (XLA 0.10.2 on CPU):
    #   3 all-gathers (forward merges): conv3 input (2,13,13,2,128), fc6 input (2,6,6,2,128), fc7 input (2,2,2048);
    #   all-reduce fc8 forward: summing the towers' partial logits (einsum tni,tio->no);
    #   all-reduce fc7 and fc6 backward: input gradients from both towers' kernels;
    #   all-reduce conv3 backward (the input gradient psum of conv3's shard_map), combined with 11 scalars
    #   and 1 more all-reduce of 4 scalars: the grad_norm metric's sums of squares of the 15 tower-sharded gradients.
    model_ops = [op for op in ops if "model" in op.axes]
    assert len(model_ops) == 8, "\n".join(
        f"{op.opcode} {sorted(op.axes)} {op.op_name}" for op in model_ops
    )
    assert sum(op.opcode == "all-gather" for op in model_ops) == 3
    assert any("data" in op.axes for op in ops), (
        "no gradient all-reduce over 'data' found: is the parser blind?"
    )


def test_grouped_conv_towers_fail_the_check():
    """Control: vmap over towers makes grouped convs, which XLA all-gathers over 'model' (and 'data')."""
    mesh = sharding.create_mesh(MESH)
    config = paper_config()
    model = steps.create_model(config, mesh).clone(tower_map=models.vmap_over_towers)
    ops = collectives(compiled_train_hlo(model, config, mesh), mesh)
    problems = tower_talk_problems(ops, BATCH // MESH[0])
    assert any(
        "within-tower" in p and ("conv2" in p or "conv4" in p or "conv5" in p) for p in problems
    ), problems
    assert any("over 'data'" in p for p in problems), problems


# ---------------------------------------------------------------------------
# A sharded step computes what one device computes


def run_steps(mesh, config, batches, dropout_key):
    model = steps.create_model(config, mesh)
    tx = steps.create_optimizer(config, steps_per_epoch=10, total_steps=100)
    _, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    state = steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
    initial = jax.device_get(state.params)  # copied before the step donates the state
    losses = []
    for batch in batches:
        state, metrics = p_train(state, sharding.host_batch_to_global(batch, mesh), dropout_key)
        assert bool(metrics["finite"])
        losses.append(float(metrics["loss"]))
    return initial, jax.device_get(state.params), losses


@pytest.mark.slow  # over 20 s on 2 CPU cores
def test_sharded_step_equals_one_device():
    # He init and a constant learning rate: the paper's N(0, 0.01) init barely moves in 3 steps, which
    # would make any two runs agree.
    # At the paper model's smallest input, 63x63 (fc6 then sees 1x1x256), with fc6 and fc7 of 512:
    # where the towers and the data shards meet does not depend on the image size or the fc widths,
    # and a step costs 1/12 of one at 224.
    config = paper_config(
        image_size=63,
        hidden_features=(512, 512),
        init_scheme="he",
        schedule="constant",
        warmup_epochs=0.0,
        learning_rate=0.002,
        dropout_rate=0.5,
    )
    rng = np.random.default_rng(0)
    size = config.image_size
    batches = [
        {
            "image": rng.normal(size=(BATCH, size, size, 3)).astype(np.float32),
            "label": rng.integers(0, config.num_classes, BATCH).astype(np.int32),
            "mask": np.ones(BATCH, bool),
        }
        for _ in range(3)
    ]
    key = jax.random.key(1)
    one_device = sharding.create_mesh((1, 1), devices=jax.devices()[:1])
    initial, expected, expected_losses = run_steps(one_device, config, batches, key)
    _, sharded, losses = run_steps(sharding.create_mesh(MESH), config, batches, key)
    _, _, other_losses = run_steps(one_device, config, batches[:1], jax.random.key(2))

    # Dropout is on and matters: another key gives another loss. Equal losses and params below
    # therefore also mean equal dropout masks on both meshes (threefry is partitionable).
    assert abs(other_losses[0] - expected_losses[0]) > 1e-3
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    moved, difference = largest_difference(expected, initial), largest_difference(sharded, expected)
    assert moved > 1e-3  # the parameters changed far more than the tolerance
    # float32 sums in another order (per-shard partial sums, all-reduces). Measured max abs difference:
    # 3.0e-8 at 63x63 with fc 512 (params moved 0.019; 0.016 with fc 4,096); at 224x224, 3e-8 (moved
    # 0.027), and 1.3e-6 with learning_rate=0.01 (moved 0.54, loss 6.4 -> 109 -> 19).
    print(f"sharded vs one device: max |difference| {difference:.1e}; parameters moved {moved:.1e}")
    assert difference < 1e-5, (difference, moved)


# ---------------------------------------------------------------------------
# create_mesh


@pytest.mark.parametrize(
    "mesh_shape, message",
    [
        ((3, 2), r"has 6 devices but there are 8"),
        ((-1, 3), r"needs a multiple of 3 devices; there are 8"),
        ((0, 2), r"positive sizes"),
        ((-1, -1), r"at most one -1"),
        ((2, 2, 2), r"\(data, model\)"),
    ],
)
def test_create_mesh_rejects_shapes_that_do_not_fit(mesh_shape, message):
    with pytest.raises(sharding.MeshError, match=message):
        sharding.create_mesh(mesh_shape)


@pytest.mark.parametrize(
    "mesh_shape, shape", [((-1, 2), (4, 2)), ((-1, 1), (8, 1)), ((2, -1), (2, 4)), ((8, 1), (8, 1))]
)
def test_create_mesh_fills_in_minus_one(mesh_shape, shape):
    mesh = sharding.create_mesh(mesh_shape)
    assert mesh.axis_names == ("data", "model")
    assert mesh.devices.shape == shape
    assert {d.id for d in mesh.devices.flat} == {d.id for d in jax.devices()}


@pytest.mark.parametrize("towers, mesh_shape", [(1, (4, 2)), (2, (2, 4))])
def test_model_axis_must_match_the_towers(towers, mesh_shape):
    config = default.get_config()
    config.towers = towers
    with pytest.raises(
        sharding.MeshError,
        match=f"puts {mesh_shape[1]} devices on 'model' but the model has {towers} tower",
    ):
        steps.create_model(config, sharding.create_mesh(mesh_shape))
