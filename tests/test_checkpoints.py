"""Checkpointer and load_params: round trips, retention, resharding, a 1-device reader, errors.

References are numpy copies taken before saving and step sets worked out by
hand; the 1-device reader runs in a fresh interpreter without the fake devices.
"""

import json
import logging as std_logging
import os
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import logging
from helpers import run_python
from jax.sharding import NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax.checkpoints import (
    CHECKPOINT_SUBDIR,
    Checkpointer,
    load_params,
    quiet_orbax_logging,
)


def _mesh(shape):
    return jax.make_mesh(shape, ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)


def _host_state(seed=0):
    """A train-state-like tree of numpy arrays: tower params, momentum, counters."""
    rng = np.random.default_rng(seed)
    return {
        "params": {
            "conv1": {
                "kernel": rng.standard_normal((2, 3, 3, 3, 4)).astype(
                    np.float32
                ),  # leading tower axis
                "bias": rng.standard_normal((2, 4)).astype(np.float32),
            },
            "fc8": {"kernel": rng.standard_normal((8, 5)).astype(jnp.bfloat16)},
        },
        "opt_state": {
            "momentum": rng.standard_normal((2, 3, 3, 3, 4)).astype(np.float32),
            "count": np.int32(17),
        },
        "rng": np.array([123, 456], np.uint32),
    }


def _shardings(mesh):
    """P('model') on the tower axis, P('data') on fc8's input axis, the rest replicated."""
    tower = NamedSharding(mesh, P("model"))
    return {
        "params": {
            "conv1": {"kernel": tower, "bias": tower},
            "fc8": {"kernel": NamedSharding(mesh, P("data", None))},
        },
        "opt_state": {"momentum": tower, "count": NamedSharding(mesh, P())},
        "rng": NamedSharding(mesh, P()),
    }


def _abstract(host, shardings):
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), host, shardings
    )


def _assert_trees_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        a = np.asarray(a)
        assert a.dtype == np.asarray(e).dtype
        np.testing.assert_array_equal(a, e)  # bit-identical, not close


def _save_sharded(directory, steps=(1,), **kwargs):
    """Saves `_host_state()` laid out on a (4, 2) mesh; returns the host copy."""
    host = _host_state()
    state = jax.device_put(host, _shardings(_mesh((4, 2))))
    with Checkpointer(directory, **kwargs) as ckpt:
        for step in steps:
            ckpt.save(step, {**state, "step": step}, {"step": step})
    return host


def test_round_trip_is_bit_identical_with_metadata(tmp_path):
    host = _host_state()
    mesh = _mesh((4, 2))
    state = {**jax.device_put(host, _shardings(mesh)), "step": 1000}
    metadata = {
        "data_position": {"epoch": 3, "index": 1234},
        "schedule": {"lr": 0.01},
        "config": {"variant": "paper"},
    }
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.save(1000, state, metadata, metrics={"val_top1_error": jnp.float32(0.4)})
        # Async save returns after the host copy: the source buffers may go at once (donation).
        for leaf in jax.tree.leaves(state):
            if isinstance(leaf, jax.Array):
                leaf.delete()
        ckpt.wait()
        target = {**_abstract(host, _shardings(mesh)), "step": 0}
        restored, restored_metadata = ckpt.restore(target)
        assert ckpt.latest_step() == 1000 and ckpt.all_steps() == [1000]
    _assert_trees_equal({k: v for k, v in restored.items() if k != "step"}, host)
    assert restored["step"] == 1000
    assert restored_metadata == metadata
    for leaf, sharding in zip(
        jax.tree.leaves(restored["params"]), jax.tree.leaves(_shardings(mesh)["params"])
    ):
        assert leaf.sharding == sharding
    # What is on disk is plain JSON, readable without Orbax.
    with open(tmp_path / "1000" / "metrics" / "metrics") as f:
        assert json.load(f) == {"val_top1_error": pytest.approx(0.4)}


def test_keeps_latest_k_plus_best_across_a_restart(tmp_path):
    errors = {1: 0.9, 2: 0.2, 3: 0.5, 4: 0.6, 5: None, 6: 0.3, 7: 0.7}  # step 2 is the best
    state = {"params": {"w": jnp.ones((2,))}}
    ckpt = Checkpointer(tmp_path, max_to_keep=2)
    for step in (1, 2, 3, 4):
        ckpt.save(step, state, {}, metrics={"val_top1_error": errors[step], "train_loss": 1.0})
    ckpt.close()
    assert sorted(int(d) for d in os.listdir(tmp_path) if d.isdigit()) == [2, 3, 4]

    # A new job on the same directory still knows that step 2 is the best.
    ckpt = Checkpointer(tmp_path, max_to_keep=2)
    assert ckpt.best_step() == 2
    for step in (5, 6, 7):
        metrics = None if errors[step] is None else {"val_top1_error": errors[step]}
        ckpt.save(step, state, {}, metrics=metrics)
    ckpt.close()
    assert ckpt.all_steps() == [2, 6, 7]
    assert sorted(int(d) for d in os.listdir(tmp_path) if d.isdigit()) == [2, 6, 7]


def test_without_keep_best_keeps_only_the_latest(tmp_path):
    with Checkpointer(tmp_path, max_to_keep=2, keep_best=False) as ckpt:
        for step, error in [(1, 0.1), (2, 0.5), (3, 0.6)]:
            ckpt.save(step, {"params": {"w": jnp.zeros(3)}}, {}, metrics={"val_top1_error": error})
    assert sorted(int(d) for d in os.listdir(tmp_path) if d.isdigit()) == [2, 3]


def test_old_step_is_skipped_unless_forced(tmp_path):
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.save(5, {"params": {"w": jnp.zeros(3)}}, {})
        assert not ckpt.save(4, {"params": {"w": jnp.zeros(3)}}, {})
        assert ckpt.save(4, {"params": {"w": jnp.zeros(3)}}, {}, force=True)
        with pytest.raises(ValueError, match="already exists"):
            ckpt.save(5, {"params": {"w": jnp.zeros(3)}}, {}, force=True)
        assert ckpt.all_steps() == [4, 5]


@pytest.mark.parametrize("layout", ["single_device", "mesh_8x1"])
def test_restore_onto_another_sharding(tmp_path, layout):
    host = _save_sharded(tmp_path)
    if layout == "single_device":
        device = SingleDeviceSharding(jax.devices()[3])
        shardings = jax.tree.map(lambda _: device, host)
    else:
        mesh = _mesh((8, 1))
        shardings = jax.tree.map(lambda _: NamedSharding(mesh, P()), host)
        shardings["params"]["fc8"]["kernel"] = NamedSharding(mesh, P("data", None))
    with Checkpointer(tmp_path) as ckpt:
        restored, metadata = ckpt.restore({**_abstract(host, shardings), "step": 0}, step=1)
    assert metadata == {"step": 1}
    restored.pop("step")
    _assert_trees_equal(restored, host)
    for leaf, sharding in zip(jax.tree.leaves(restored), jax.tree.leaves(shardings)):
        assert leaf.sharding == sharding


@pytest.mark.slow
def test_load_params_in_a_one_device_process(tmp_path):
    workdir = tmp_path / "workdir"
    host = _save_sharded(workdir / CHECKPOINT_SUBDIR, steps=(10, 20))
    out = tmp_path / "params.npz"
    script = textwrap.dedent(
        f"""
        import jax, numpy as np
        from alexnet_jax.checkpoints import load_params
        assert len(jax.devices()) == 1, jax.devices()
        params = load_params({str(workdir)!r})
        leaves = jax.tree_util.tree_leaves_with_path(params)
        flat = {{"/".join(str(k.key) for k in path): leaf for path, leaf in leaves}}
        assert all(type(v) is np.ndarray for v in flat.values()), {{k: type(v) for k, v in flat.items()}}
        np.savez({str(out)!r}, **{{k: v.view(np.uint16) if v.dtype.name == "bfloat16" else v for k, v in flat.items()}})
        """
    )
    result = run_python("-c", script, timeout=120)  # subprocess_env: one CPU device
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = np.load(out)
    expected = host["params"]
    assert sorted(loaded.files) == ["conv1/bias", "conv1/kernel", "fc8/kernel"]
    np.testing.assert_array_equal(loaded["conv1/kernel"], expected["conv1"]["kernel"])
    np.testing.assert_array_equal(loaded["conv1/bias"], expected["conv1"]["bias"])
    np.testing.assert_array_equal(loaded["fc8/kernel"], expected["fc8"]["kernel"].view(np.uint16))


def test_load_params_accepts_the_checkpoint_dir_and_a_step(tmp_path):
    host = _save_sharded(tmp_path, steps=(1, 2))
    params = load_params(tmp_path, step=1)
    _assert_trees_equal(params, host["params"])
    assert all(type(leaf) is np.ndarray for leaf in jax.tree.leaves(params))


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_params(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No checkpoint in"):
        load_params(tmp_path / "empty")
    with Checkpointer(tmp_path / "empty") as ckpt:
        assert ckpt.latest_step() is None
        with pytest.raises(FileNotFoundError, match="No checkpoint in"):
            ckpt.restore({"params": {}})

    with Checkpointer(tmp_path / "run") as ckpt:
        ckpt.save(3, {"params": {"w": jnp.zeros(2)}}, {})
        ckpt.save(7, {"weights": {"w": jnp.zeros(2)}}, {})
        with pytest.raises(ValueError, match=r"step 5 .*available steps: \[3, 7\]"):
            ckpt.restore({"params": {"w": jax.ShapeDtypeStruct((2,), jnp.float32)}}, step=5)
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            ckpt.save(8, {"params": {"w": jnp.zeros(2)}}, {"lr": np.float32(0.1)})
    with pytest.raises(ValueError, match=r"available steps: \[3, 7\]"):
        load_params(tmp_path / "run", step=4)
    with pytest.raises(ValueError, match="no 'params' entry"):
        load_params(tmp_path / "run", step=7)
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer(tmp_path / "bad", max_to_keep=0)


def test_orbax_info_is_quiet_but_warnings_are_not(tmp_path, caplog):
    def orbax_records(quiet):
        caplog.clear()
        quiet_orbax_logging(quiet)
        with Checkpointer(tmp_path / str(quiet), quiet=quiet) as ckpt:
            ckpt.save(1, {"params": {"w": jnp.zeros(2)}}, {})
        # Orbax warns that it resets save_interval_steps
        ocp.CheckpointManagerOptions(read_only=True)
        logging.info("a line of our own")
        return [r for r in caplog.records if "orbax" in r.pathname], [
            r.getMessage() for r in caplog.records
        ]

    old_verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.INFO)
    try:
        with caplog.at_level(std_logging.INFO):
            loud, _ = orbax_records(quiet=False)
            quiet, messages = orbax_records(quiet=True)
    finally:
        logging.set_verbosity(old_verbosity)
        quiet_orbax_logging(True)
    assert any(r.levelno == std_logging.INFO for r in loud)  # control: Orbax does talk at INFO
    assert quiet and all(r.levelno == std_logging.WARNING for r in quiet)
    # and nothing about our saves without metrics
    assert all("read_only" in r.getMessage() for r in quiet)
    assert "a line of our own" in messages
