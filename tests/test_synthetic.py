"""Synthetic input (`dataset=synthetic`): batches drawn on the devices, deterministic per seed,
independent of the mesh, and a training run on them that resumes exactly and logs its input wait."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_data import digits_config
from helpers import read_metrics
from scipy import stats

from alexnet_jax import checkpoints, sharding, synthetic, train
from alexnet_jax.data import batching, sources


def one_device_mesh():
    return sharding.create_mesh((1, 1), devices=jax.devices()[:1])


def host(batch):
    return {name: np.asarray(jax.device_get(value)) for name, value in batch.items()}


def first_batches(mesh, count, **kwargs):
    settings = dict(global_batch_size=8, image_size=16, num_classes=10, seed=0) | kwargs
    stream = synthetic.train_batches(mesh, **settings)
    return [host(next(stream)) for _ in range(count)]


def test_training_batches_are_deterministic_per_seed_and_resume_the_stream():
    mesh = one_device_mesh()
    first, again = first_batches(mesh, 3), first_batches(mesh, 3)
    for a, b in zip(first, again, strict=True):
        for name in ("image", "label", "mask"):
            np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(first[0]["image"], first[1]["image"])  # a new batch every step
    other_seed = first_batches(mesh, 1, seed=1)[0]
    assert not np.allclose(other_seed["image"], first[0]["image"])
    resumed = first_batches(mesh, 1, start_step=2)[0]  # a resumed run continues the stream
    np.testing.assert_array_equal(resumed["image"], first[2]["image"])
    np.testing.assert_array_equal(resumed["label"], first[2]["label"])


def test_batches_are_normal_images_and_uniform_labels():
    batches = first_batches(one_device_mesh(), 4, num_classes=3)
    images = np.concatenate([b["image"] for b in batches]).ravel()
    assert batches[0]["image"].shape == (8, 16, 16, 3) and batches[0]["image"].dtype == np.float32
    # like normalized pixels: standard normal (Kolmogorov-Smirnov against scipy's normal)
    assert stats.kstest(images, "norm").pvalue > 1e-3
    labels = np.concatenate([b["label"] for b in batches])
    assert labels.dtype == np.int32 and set(labels.tolist()) == {0, 1, 2}
    assert all(b["mask"].all() for b in batches)


def test_batches_do_not_depend_on_the_mesh_and_are_laid_out_on_it():
    one = first_batches(one_device_mesh(), 2)
    mesh = sharding.create_mesh((4, 2))
    stream = synthetic.train_batches(mesh, 8, 16, 10, seed=0, half_precision=True)
    spread = next(stream)
    assert spread["image"].sharding.is_equivalent_to(sharding.batch_sharding(mesh), 4)
    assert spread["label"].sharding.is_equivalent_to(sharding.batch_sharding(mesh), 1)
    assert spread["image"].dtype == jnp.bfloat16
    spread = host(spread)
    np.testing.assert_array_equal(spread["label"], one[0]["label"])
    # the same normal draws, rounded to bfloat16
    expected = one[0]["image"].astype(jnp.bfloat16)
    np.testing.assert_array_equal(spread["image"], expected)
    float_stream = synthetic.train_batches(mesh, 8, 16, 10, seed=0, start_step=1)
    np.testing.assert_array_equal(host(next(float_stream))["image"], one[1]["image"])


def test_evaluation_batches_cover_the_split_once_with_padding():
    mesh = one_device_mesh()
    batches = [host(b) for b in synthetic.eval_batches(mesh, 8, 16, 20, 10, seed=0)]
    assert len(batches) == synthetic.num_eval_batches(20, 8) == 3
    np.testing.assert_array_equal(batches[2]["mask"], [True] * 4 + [False] * 4)
    assert sum(int(b["mask"].sum()) for b in batches) == 20
    again = [host(b) for b in synthetic.eval_batches(mesh, 8, 16, 20, 10, seed=0)]
    np.testing.assert_array_equal(batches[1]["image"], again[1]["image"])
    # not the training stream's images
    assert not np.allclose(batches[0]["image"], first_batches(mesh, 1)[0]["image"])
    crops = next(synthetic.eval_batches(mesh, 8, 16, 20, 10, seed=0, ten_crop=True))
    assert crops["image"].shape == (8, 10, 16, 16, 3)


def test_the_host_pipeline_refuses_synthetic_data_and_bad_sizes_are_named():
    data = sources.load_data(sources.InputConfig(dataset="synthetic", num_classes=10))
    assert (len(data.train), len(data.eval), data.num_classes) == (1_281_167, 50_000, 10)
    for make in (
        lambda: batching.train_dataset(data, sources.InputConfig(dataset="synthetic"), 8),
        lambda: batching.eval_dataset(data, sources.InputConfig(dataset="synthetic"), 8),
    ):
        with pytest.raises(sources.DataError, match="drawn on the devices"):
            make()
    with pytest.raises(sources.DataError, match="synthetic_eval_examples >= 1"):
        sources.load_data(sources.InputConfig(dataset="synthetic", synthetic_eval_examples=0))
    with pytest.raises(sources.DataError, match="synthetic is drawn on the devices"):
        sources.load_data(sources.InputConfig(dataset="synthetic", classes=(1, 2)))


@pytest.mark.slow
def test_training_on_synthetic_data_resumes_exactly_and_logs_its_input_wait(tmp_path):
    settings = dict(
        dataset="synthetic",
        synthetic_train_examples=64,
        synthetic_eval_examples=12,
        num_train_steps=6,
        log_every_steps=2,
    )
    config = digits_config("", **settings)
    straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
    train.train_and_evaluate(
        digits_config("", **{**settings, "num_train_steps": 3}), str(tmp_path / "resumed")
    )
    train.train_and_evaluate(config, str(tmp_path / "resumed"))
    jax.tree.map(
        np.testing.assert_array_equal,
        checkpoints.load_params(tmp_path / "straight"),
        checkpoints.load_params(tmp_path / "resumed"),
    )
    assert straight["val_examples"] == 12  # the padded last batch counted once
    records = read_metrics(tmp_path / "straight", "loss")
    assert [r["step"] for r in records] == [2, 4, 6]
    assert records[-1]["epoch"] == pytest.approx(6 * 8 / 64)
    for record in records:
        assert 0 <= record["input_wait_seconds"] <= record["step_seconds"]
        assert 0 <= record["input_wait_fraction"] <= 1
