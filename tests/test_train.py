"""The training loop: resume, exact evaluation, 10-crop averaging, the NaN guard, ImageNet end to end."""

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_data import FIRST_40_TEST_DIGITS, digits_config, write_fake_imagenet
from helpers import read_metrics

from alexnet_jax import checkpoints, input_pipeline, metrics, sharding, steps, train
from alexnet_jax.models import AlexNet
from configs import imagenet


def metric_steps(workdir, key):
    return [record["step"] for record in read_metrics(workdir, key)]


@pytest.mark.slow  # over 20 s on 2 CPU cores
def test_resume_is_bit_identical(tfds_data_dir, tmp_path):
    config = digits_config(tfds_data_dir, num_train_steps=6, schedule="constant")
    train.train_and_evaluate(config, str(tmp_path / "straight"))

    interrupted = digits_config(tfds_data_dir, num_train_steps=3, schedule="constant")
    # stops after step 3's checkpoint
    train.train_and_evaluate(interrupted, str(tmp_path / "resumed"))
    train.train_and_evaluate(config, str(tmp_path / "resumed"))  # same command again: resumes at 3

    straight = checkpoints.load_params(tmp_path / "straight")
    resumed = checkpoints.load_params(tmp_path / "resumed")
    jax.tree.map(np.testing.assert_array_equal, straight, resumed)
    assert metric_steps(tmp_path / "resumed", "loss") == [
        2,
        3,
        4,
        6,
    ]  # step 3 logged once, as the last step of run 1
    assert metric_steps(tmp_path / "straight", "loss") == [2, 4, 6]


@pytest.mark.slow
def test_metrics_after_the_checkpoint_are_replaced_on_resume(tfds_data_dir, tmp_path):
    config = digits_config(
        tfds_data_dir, num_train_steps=4, schedule="constant", checkpoint_every_steps=2
    )
    workdir = str(tmp_path)
    train.train_and_evaluate(config, workdir)
    # A run that died after logging step 5 but before its next checkpoint:
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as file:
        file.write(json.dumps({"step": 5, "loss": 9.9}) + "\n")
    train.train_and_evaluate(
        digits_config(
            tfds_data_dir, num_train_steps=6, schedule="constant", checkpoint_every_steps=2
        ),
        workdir,
    )
    assert metric_steps(workdir, "loss") == [2, 4, 6]


@pytest.mark.slow
def test_eval_counts_every_example_once(tfds_data_dir, tmp_path):
    # 360 = 5 * 64 + 40
    config = digits_config(tfds_data_dir, num_train_steps=2, eval_every_steps=2, batch_size=64)
    metrics = train.train_and_evaluate(config, str(tmp_path))
    assert metrics["val_examples"] == 360
    errors = metrics["val_top1_error"] * 360
    assert abs(errors - round(errors)) < 1e-6  # a whole number of mistakes out of 360


def test_ten_crop_eval_averages_softmax_over_crops():
    model = AlexNet(7, "small", dropout_rate=0.0)
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(3, 10, 32, 32, 3)).astype(np.float32)
    labels = np.array([1, 4, 6], np.int32)
    params = model.init(jax.random.key(0), crops[:, 0])["params"]
    params = nn.unbox(params)
    batch = {
        "image": jnp.asarray(crops),
        "label": jnp.asarray(labels),
        "mask": jnp.array([True, True, False]),
    }
    sums = steps.eval_step(((params, {}),), batch, model=model)

    # numpy: softmax of each crop's logits, averaged over the 10 crops
    logits = np.stack(
        [np.asarray(model.apply({"params": params}, jnp.asarray(crops[:, c]))) for c in range(10)],
        1,
    )
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (exp / exp.sum(-1, keepdims=True)).mean(1)  # (3, 7)
    real = slice(0, 2)  # the third example is padding
    label_probs = probs[np.arange(2), labels[:2]]
    np.testing.assert_allclose(float(sums["loss_sum"]), -np.log(label_probs).sum(), rtol=1e-5)
    assert float(sums["top1_correct"]) == (probs[real].argmax(-1) == labels[real]).sum()
    top5 = np.argsort(-probs[real], -1)[:, :5]
    assert float(sums["top5_correct"]) == sum(labels[i] in top5[i] for i in range(2))
    assert float(sums["count"]) == 2


@pytest.mark.slow  # over 20 s on 2 CPU cores
def test_ensemble_of_two_checkpoints(tfds_data_dir, tmp_path):
    config = digits_config(tfds_data_dir, num_train_steps=6, schedule="constant")
    train.train_and_evaluate(config, str(tmp_path))
    single = train.evaluate_checkpoints(config, str(tmp_path), [6])
    ensemble = train.evaluate_checkpoints(config, str(tmp_path), [3, 6])
    assert ensemble["steps"] == [3, 6] and ensemble["val_examples"] == 360
    assert ensemble["val_loss"] != single["val_loss"]

    # numpy: each member's softmax on the evaluation images, averaged, then the loss and top-1 error
    input_config = input_pipeline.InputConfig.from_config(config)
    data = input_pipeline.load_data(input_config)
    dataset, _ = input_pipeline.eval_dataset(data, input_config, 360)
    batch = next(dataset.as_numpy_iterator())
    model = steps.create_model(config)
    probabilities = []
    for step in (3, 6):
        logits = np.asarray(
            model.apply(
                {"params": checkpoints.load_params(tmp_path, step)}, jnp.asarray(batch["image"])
            ),
            np.float64,
        )
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities.append(exp / exp.sum(-1, keepdims=True))
    average = np.mean(probabilities, axis=0)
    labels = batch["label"]
    np.testing.assert_allclose(
        ensemble["val_loss"], -np.log(average[np.arange(360), labels]).mean(), rtol=1e-4
    )
    assert abs(ensemble["val_top1_error"] - (average.argmax(-1) != labels).mean()) < 1e-6

    # Separately trained networks (the paper's "5 CNNs"): another seed in another workdir, with
    # 10-crop reported too, on the first 40 test digits (the averages do not depend on the count).
    other = tmp_path / "seed1"
    train.train_and_evaluate(
        digits_config(tfds_data_dir, num_train_steps=3, schedule="constant", seed=1), str(other)
    )
    config.final_eval_crops, config.eval_split = ("ten_crop",), FIRST_40_TEST_DIGITS
    both = train.evaluate_checkpoints(config, str(tmp_path), [6], [str(other)])
    assert both["members"] == [f"{tmp_path}@6", f"{other}@3"] and both["steps"] == [6]
    assert both["val_examples"] == both["val_ten_crop_examples"] == 40
    few = input_pipeline.InputConfig.from_config(config)
    few_data = input_pipeline.load_data(few)
    centre, labels = (
        next(input_pipeline.eval_dataset(few_data, few, 40)[0].as_numpy_iterator())[key]
        for key in ("image", "label")
    )
    ten_crop = dataclasses.replace(few, eval_crop="ten_crop")
    crops = next(input_pipeline.eval_dataset(few_data, ten_crop, 40)[0].as_numpy_iterator())[
        "image"
    ]  # (40, 10, S, S, 3)
    np.testing.assert_array_equal(labels, batch["label"][:40])
    for key, images in (("val_", centre), ("val_ten_crop_", crops)):
        flat = jnp.asarray(images.reshape((-1,) + images.shape[-3:]))
        averaged = 0
        for params in (checkpoints.load_params(tmp_path, 6), checkpoints.load_params(other, 3)):
            logits = np.asarray(model.apply({"params": params}, flat), np.float64).reshape(
                40, -1, 10
            )
            exp = np.exp(logits - logits.max(-1, keepdims=True))
            # over crops, then members
            averaged = averaged + (exp / exp.sum(-1, keepdims=True)).mean(1) / 2
        np.testing.assert_allclose(
            both[key + "loss"], -np.log(averaged[np.arange(40), labels]).mean(), rtol=1e-4
        )
        assert abs(both[key + "top1_error"] - (averaged.argmax(-1) != labels).mean()) < 1e-6

    # A member that is another network (no LRN: the same parameter shapes), and a workdir that is not there.
    odd = tmp_path / "other_network"
    (odd / "checkpoints").mkdir(parents=True)
    (odd / "config.json").write_text(
        json.dumps({**json.loads(config.to_json_best_effort()), "normalization": "none"})
    )
    with pytest.raises(checkpoints.CheckpointMismatchError, match="normalization: 'none' in"):
        train.evaluate_checkpoints(config, str(tmp_path), [6], [str(odd)])
    with pytest.raises(FileNotFoundError, match="No checkpoints in"):
        train.evaluate_checkpoints(config, str(tmp_path), [6], [str(tmp_path / "typo")])
    assert not (tmp_path / "typo").exists()


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tfds_data_dir, tmp_path):
    config = digits_config(
        tfds_data_dir,
        num_train_steps=12,
        schedule="constant",
        learning_rate=1e12,
        log_every_steps=1,
        checkpoint_every_steps=1,
        optimizer="sgd",
    )
    with pytest.raises(
        train.TrainingError, match=r"Non-finite loss or gradient at step (\d+)"
    ) as error:
        train.train_and_evaluate(config, str(tmp_path))
    bad_step = int(error.value.args[0].split("at step ")[1].split(" ")[0])
    saved = checkpoints.Checkpointer(tmp_path / "checkpoints").all_steps()
    assert saved and max(saved) == bad_step - 1  # nothing saved from the bad step on
    assert f"the last checkpoint, of step {bad_step - 1}, is intact" in error.value.args[0]
    params = checkpoints.load_params(tmp_path)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))


@pytest.mark.slow
def test_a_non_finite_step_is_named_when_noticed_between_log_lines(tfds_data_dir, tmp_path):
    # Logged every step, the first non-finite step is caught as it happens: the reference for its number.
    settings = dict(
        num_train_steps=12, learning_rate=1e12, optimizer="sgd", checkpoint_every_steps=100
    )
    with pytest.raises(train.TrainingError, match=r"at step (\d+)") as every_step:
        train.train_and_evaluate(
            digits_config(tfds_data_dir, log_every_steps=1, **settings), str(tmp_path / "a")
        )
    bad_step = int(every_step.value.args[0].split("at step ")[1].split(" ")[0])
    assert bad_step < 11
    with pytest.raises(train.TrainingError) as rarely:  # no log, eval or checkpoint before step 12
        train.train_and_evaluate(
            digits_config(tfds_data_dir, log_every_steps=100, **settings), str(tmp_path / "b")
        )
    message = rarely.value.args[0]
    assert (
        f"Non-finite loss or gradient at step {bad_step} " in message
        and "the first such step" in message
    )
    # noticed one step later, not at step 12
    assert f"Training stopped at step {bad_step + 1} " in message
    assert "no checkpoint was written yet" in message


@pytest.mark.slow
def test_logged_training_metrics_are_means_over_the_logging_window(tfds_data_dir, tmp_path):
    settings = dict(num_train_steps=6, checkpoint_every_steps=100)
    train.train_and_evaluate(
        digits_config(tfds_data_dir, log_every_steps=1, **settings), str(tmp_path / "each")
    )
    train.train_and_evaluate(
        digits_config(tfds_data_dir, log_every_steps=3, **settings), str(tmp_path / "window")
    )
    each, window = (read_metrics(tmp_path / name, "loss") for name in ("each", "window"))
    assert [r["step"] for r in window] == [3, 6]
    for record, logged in zip(window, (each[0:3], each[3:6])):
        for name in ("loss", "top1_error", "top5_error", "grad_norm"):
            np.testing.assert_allclose(record[name], np.mean([r[name] for r in logged]), rtol=1e-6)
        assert record["learning_rate"] == logged[-1]["learning_rate"]
        # the window's time per step, and the part of it spent waiting for the next batch
        assert 0 <= record["input_wait_seconds"] <= record["step_seconds"]
        np.testing.assert_allclose(
            record["input_wait_fraction"],
            record["input_wait_seconds"] / record["step_seconds"],
            rtol=1e-6,
        )
        np.testing.assert_allclose(
            record["images_per_second"], 8 / record["step_seconds"], rtol=1e-6
        )


@pytest.mark.parametrize("optimizer", ["paper_sgd", "adamw"])
def test_a_skipped_step_advances_the_learning_rate_schedule(optimizer):
    from alexnet_jax import sharding
    from configs import default

    config = default.get_config()
    config.schedule, config.warmup_epochs, config.learning_rate, config.optimizer = (
        "cosine",
        0.0,
        0.1,
        optimizer,
    )
    # One device: a step is skipped on its own loss, whatever the mesh (the loop skips steps on
    # 8 devices in test_non_finite_steps_can_be_skipped_and_counted); 8 took twice as long.
    mesh = sharding.create_mesh((1, 1), devices=jax.devices()[:1])
    model = steps.create_model(config, mesh)
    tx = steps.create_optimizer(config, steps_per_epoch=2, total_steps=4)
    _, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    state = steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    key = sharding.put_replicated(jax.random.key(1), mesh)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 32, 32, 3)).astype(np.float32)
    good = sharding.host_batch_to_global(
        {"image": images, "label": np.arange(8, dtype=np.int32)}, mesh
    )
    bad = sharding.host_batch_to_global(
        {"image": np.full_like(images, np.nan), "label": np.arange(8, dtype=np.int32)}, mesh
    )
    rates, finite, kept = [], [], []
    for batch in (good, bad, good, good):
        state, metrics = p_train(state, batch, key)
        rates.append(float(metrics["learning_rate"]))
        finite.append(bool(metrics["finite"]))
        # before the next step donates it
        kept.append(jax.device_get((state.params, state.opt_state.inner_state)))
    assert finite == [True, False, True, True]
    # weights, momentum (and Adam's count) kept
    jax.tree.map(np.testing.assert_array_equal, kept[1], kept[0])
    assert int(state.step) == int(state.opt_state.count) == 4
    cosine = [
        0.1 * 0.5 * (1 + np.cos(np.pi * t / 4)) for t in range(4)
    ]  # the rate of step t + 1, numpy's formula
    # The skipped step reports the rate of the state it kept (step 1's); the next one uses step 3's rate.
    np.testing.assert_allclose(rates, [cosine[0], cosine[0], cosine[2], cosine[3]], rtol=1e-6)


@pytest.mark.slow
def test_non_finite_steps_can_be_skipped_and_counted(tfds_data_dir, tmp_path):
    config = digits_config(
        tfds_data_dir,
        num_train_steps=6,
        schedule="constant",
        learning_rate=1e12,
        optimizer="sgd",
        skip_nonfinite_steps=True,
        log_every_steps=6,
    )
    metrics = train.train_and_evaluate(config, str(tmp_path))
    assert metrics["skipped_steps"] >= 1


@pytest.mark.slow  # over 20 s on 2 CPU cores
def test_imagenet_config_trains_on_fake_tars_with_two_towers(tmp_path):
    write_fake_imagenet(tmp_path / "manual")
    config = imagenet.get_config()
    config.data_dir = str(tmp_path / "tfds")
    config.manual_dir = str(tmp_path / "manual")
    config.mesh_shape = (-1, 2)
    # The paper's crop of a 256 side (224/256) at the paper model's smallest input: every step of
    # the builder and the pipeline runs as at 224, and a step of the model costs 1/12.
    config.image_size, config.resize_size = 63, 72
    config.batch_size = 8
    config.num_train_steps = 2
    config.log_every_steps = 1
    config.eval_every_steps, config.eval_every_epochs = 1, 0.0
    config.checkpoint_every_steps = 2
    metrics = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert metrics["val_examples"] == 4 and np.isfinite(metrics["loss"])
    # Every evaluation on the centre crop; the last one also with the paper's 10-crop test, in its own keys.
    evaluations = read_metrics(tmp_path / "run", "val_loss")
    assert [r["step"] for r in evaluations] == [1, 2] and "val_ten_crop_loss" not in evaluations[0]
    assert (
        evaluations[1]["val_ten_crop_examples"] == 4
        and evaluations[1]["val_ten_crop_loss"] != evaluations[1]["val_loss"]
    )
    params = checkpoints.load_params(tmp_path / "run")
    assert params["conv2"]["kernel"].shape == (2, 5, 5, 48, 128)


def test_batch_must_divide_over_data_shards(tfds_data_dir, tmp_path):
    config = digits_config(tfds_data_dir, num_train_steps=1, batch_size=12, mesh_shape=(8, 1))
    with pytest.raises(
        sharding.MeshError, match="batch size 12 does not divide among 8 data shards"
    ):
        train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.slow
def test_predict_top5_of_image_files(tfds_data_dir, tmp_path):
    import tensorflow as tf
    from sklearn.datasets import load_digits

    from alexnet_jax import predict

    config = digits_config(tfds_data_dir, num_train_steps=6, schedule="constant")
    train.train_and_evaluate(config, str(tmp_path / "run"))
    digits = load_digits()
    paths, pixels = [], []
    for index in (0, 1):
        image = np.repeat(
            np.round(np.kron(digits.images[index], np.ones((4, 4))) * 255 / 16)[..., None], 3, -1
        ).astype(np.uint8)
        path = tmp_path / f"digit{index}.png"  # lossless, so the pixels are known exactly
        path.write_bytes(tf.io.encode_png(image).numpy())
        paths.append(str(path))
        pixels.append(image)
    results = predict.top5(str(tmp_path / "run"), paths)

    # Reference: the evaluation preprocessing in numpy (32x32 already: no resize or crop),
    # normalized with the statistics training saved, through the saved parameters.
    with open(tmp_path / "run" / "data.json") as file:
        stats = json.load(file)["color_stats"]
    normalized = (np.stack(pixels) / 255.0 - np.array(stats["mean"])) / np.array(stats["std"])
    params = checkpoints.load_params(tmp_path / "run")
    logits = np.asarray(
        steps.create_model(config).apply({"params": params}, jnp.asarray(normalized, jnp.float32)),
        np.float64,
    )
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    for best, expected in zip(results, probabilities):
        order = np.argsort(-expected)[:5]
        assert [name for name, _ in best] == [str(i) for i in order]
        np.testing.assert_allclose([p for _, p in best], expected[order], rtol=1e-4)
    assert len(predict.top5(str(tmp_path / "run"), paths, ten_crop=True)[0]) == 5
    with pytest.raises(FileNotFoundError, match="the --workdir of a training run"):
        predict.top5(str(tmp_path / "nothing"), paths)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_cross_entropy_equals_torch(smoothing):
    import torch

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(6, 10)) * 3, rng.integers(0, 10, 6)
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(logits), torch.tensor(labels), reduction="none", label_smoothing=smoothing
    ).numpy()
    ours = metrics.cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(labels), smoothing)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-5)


def test_top_k_breaks_ties_by_class_index_like_a_stable_sort():
    rng = np.random.default_rng(3)
    scores = np.concatenate(
        [
            np.full(
                (10, 10), 0.1
            ),  # uniform: only class 0 (top-1) or 0-4 (top-5) count as predicted
            np.eye(10)[[0] * 10],  # saturated on class 0, ties among the rest
            rng.integers(0, 3, (10, 10)).astype(float),  # many ties
        ]
    ).astype(np.float32)
    labels = np.tile(np.arange(10), 3).astype(np.int32)
    order = np.argsort(-scores, axis=1, kind="stable")  # numpy's ranking, ties by index
    for k in (1, 5):
        expected = [label in order[i, :k] for i, label in enumerate(labels)]
        ours = np.asarray(metrics.top_k_correct(jnp.asarray(scores), jnp.asarray(labels), k))
        np.testing.assert_array_equal(ours, expected)


@pytest.mark.slow
def test_plateau_drops_the_learning_rate_in_the_loop(tfds_data_dir, tmp_path):
    # A learning rate too small to change the validation error: every evaluation
    # after the first is "no improvement", so patience 0 drops at each one, 3 times at most.
    # Five evaluations on the first 40 test digits: that holds for any subset.
    config = digits_config(
        tfds_data_dir,
        eval_split=FIRST_40_TEST_DIGITS,
        num_train_steps=10,
        schedule="plateau",
        learning_rate=1e-9,
        plateau_patience=0,
        eval_every_steps=2,
        log_every_steps=1,
        checkpoint_every_steps=0,
    )
    train.train_and_evaluate(config, str(tmp_path))
    records = read_metrics(tmp_path)
    rates = {r["step"]: r["learning_rate"] for r in records if "learning_rate" in r}
    scales = [r["lr_scale"] for r in records if "lr_scale" in r]
    assert scales == [1.0, 0.1, pytest.approx(0.01), pytest.approx(0.001), pytest.approx(0.001)]
    # the drop decided at the eval of step 4 applies from step 5 on
    assert (
        rates[4] == pytest.approx(1e-9)
        and rates[5] == pytest.approx(1e-10)
        and rates[10] == pytest.approx(1e-12)
    )


def test_train_step_compiles_once_over_many_steps(caplog):
    # A step whose output state differed from its input in shape, dtype, weak type or sharding would
    # compile again on the next call, and every step would pay for a compilation. The control (a new
    # batch shape) must compile again, so the count can fail.
    from alexnet_jax import sharding
    from configs import default

    config = default.get_config()
    # towers on 'model' through the shard_map tower map, as the paper model trains
    config.towers = 2
    mesh = sharding.create_mesh((4, 2))  # 8 fake CPU devices (conftest.py)
    model = steps.create_model(config, mesh)
    # warmup + cosine: a new rate every step
    tx = steps.create_optimizer(config, steps_per_epoch=2, total_steps=10)
    _, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    state = steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    dropout_key = sharding.put_replicated(jax.random.key(1), mesh)
    rng = np.random.default_rng(0)

    def batch(size):
        host = {
            "image": rng.normal(size=(size, 32, 32, 3)).astype(np.float32),
            "label": rng.integers(0, 10, size).astype(np.int32),
        }
        # as the loop feeds it: fresh host data every step
        return sharding.host_batch_to_global(host, mesh)

    def compilations():  # jax.log_compiles logs one such line per compilation, with the argument types
        return [
            r.getMessage()[:300]
            for r in caplog.records
            if r.getMessage().startswith("Compiling jit(train_step)")
        ]

    with jax.log_compiles(), caplog.at_level("WARNING"):
        for _ in range(5):
            state, metrics = p_train(state, batch(8), dropout_key)
        assert int(jax.device_get(state.step)) == 5 and np.isfinite(float(metrics["loss"]))
        assert len(compilations()) == 1, compilations()
        p_train(state, batch(16), dropout_key)  # control: another batch shape is another program
        assert len(compilations()) == 2, compilations()


def test_cpu_compiled_train_step_equals_torch_gradient():
    """compile_steps' step as it trains on CPU (steps.CPU_COMPILER_OPTIONS: XLA's own convolutions,
    the non-finite guard as a cond) against a float64 PyTorch model with groups=2 and per-tower LRN."""
    import torch
    import torch.nn.functional as F

    from alexnet_jax import sharding
    from alexnet_jax.convert import torch_state_dict_to_flax
    from reference.torch_alexnet import paper_alexnet

    config = imagenet.get_config()
    config.num_classes, config.batch_size, config.mesh_shape = 10, 2, (1, 1)
    # The paper model's smallest input (conv5 pools to 1x1): what the compiler does to the step
    # does not depend on the image size, and the float64 reference costs 1/12 of one at 224.
    config.image_size = 63
    # At the first step momentum is zero, so with no weight decay the update is -lr * gradient.
    config.dropout_rate, config.weight_decay, config.learning_rate = 0.0, 0.0, 1.0
    config.schedule, config.warmup_epochs = "constant", 0.0
    mesh = sharding.create_mesh((1, 1), devices=jax.devices()[:1])
    assert steps.compiler_options(mesh) == steps.CPU_COMPILER_OPTIONS != {}

    torch.manual_seed(0)
    reference = paper_alexnet(10, spatial=1, lrn="tower").double().eval()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 63, 63, 3)).astype(np.float32)
    labels = np.array([3, 7], np.int32)
    loss = F.cross_entropy(
        reference(torch.tensor(images.transpose(0, 3, 1, 2)).double()), torch.tensor(labels).long()
    )
    loss.backward()
    expected = torch_state_dict_to_flax(
        {name: p.grad for name, p in reference.named_parameters()}, "paper"
    )

    model = steps.create_model(config, mesh)
    tx = steps.create_optimizer(config, steps_per_epoch=1, total_steps=10)
    _, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    state = steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
    weights = torch_state_dict_to_flax(reference.state_dict(), "paper")
    params = jax.tree.map(
        lambda old, new: jax.device_put(np.asarray(new, np.float32), old.sharding),
        state.params,
        weights,
    )
    state = state.replace(params=params)
    initial = jax.device_get(params)
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    batch = sharding.host_batch_to_global({"image": images, "label": labels}, mesh)
    state, metrics = p_train(state, batch, sharding.put_replicated(jax.random.key(0), mesh))

    assert bool(metrics["finite"])
    np.testing.assert_allclose(float(metrics["loss"]), loss.item(), rtol=1e-5)
    gradients = jax.tree.map(
        lambda before, after: (before - after) / config.learning_rate,
        initial,
        jax.device_get(state.params),
    )
    for layer in expected:
        for name in ("kernel", "bias"):
            ours, theirs = np.asarray(gradients[layer][name]), np.asarray(expected[layer][name])
            scale = np.abs(theirs).max()
            assert scale > 0, (layer, name)
            assert np.abs(ours - theirs).max() / scale < 1e-4, (
                layer,
                name,
                np.abs(ours - theirs).max(),
                scale,
            )
