"""Transfer learning: torchvision weights in, head re-initialisation, frozen layers, class subsets."""

import importlib
import json
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch  # before TensorFlow
from fake_data import digits_config

from alexnet_jax import checkpoints, input_pipeline, pretrained, sharding, steps, train
from alexnet_jax.errors import ConfigError, MissingPackageError
from configs import finetune_folder
from experiments import transfer
from reference.torch_alexnet import TorchvisionAlexNet, scale_weights, small_alexnet


def metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        return [json.loads(line) for line in file]


def leaves_equal(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


@pytest.fixture(scope="module")
def five_class_run(tfds_data_dir, tmp_path_factory):
    """3 steps of the small model on digits 0-4 only: pretrained weights with a 5-class head."""
    workdir = str(tmp_path_factory.mktemp("five_classes"))
    train.train_and_evaluate(
        digits_config(tfds_data_dir, num_train_steps=3, classes=(0, 1, 2, 3, 4), num_classes=5),
        workdir,
    )
    return workdir


@pytest.mark.slow
def test_torch_state_dict_starts_a_run_with_torch_logits(tfds_data_dir, tmp_path):
    """A `.pth` in torchvision's key layout starts a run; its first step's loss and error are those of torch's logits."""
    reference = scale_weights(
        small_alexnet(10)
    ).eval()  # features.N / classifier.N, as torchvision names them
    torch.save(reference.state_dict(), tmp_path / "small.pth")
    config = digits_config(
        tfds_data_dir,
        num_train_steps=1,
        dropout_rate=0.0,
        train_augment="none",
        pca_lighting_std=0.0,
        init_from=str(tmp_path / "small.pth"),
    )
    train.train_and_evaluate(config, str(tmp_path / "run"))
    (first,) = [record for record in metrics(tmp_path / "run") if "loss" in record]

    input_config = input_pipeline.InputConfig.from_config(config)
    data = input_pipeline.load_data(input_config)
    batch = next(
        input_pipeline.train_dataset(data, input_config, config.batch_size).as_numpy_iterator()
    )
    with torch.no_grad():
        logits = reference.double()(torch.tensor(batch["image"].transpose(0, 3, 1, 2)).double())
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(batch["label"]).long()).item()
    top1 = 1.0 - float((logits.argmax(1).numpy() == batch["label"]).mean())
    assert loss > 0.1 and logits.std() > 0.1  # informative logits, not a constant
    np.testing.assert_allclose(first["loss"], loss, rtol=1e-5)
    assert first["top1_error"] == pytest.approx(top1)


def test_torchvision_alexnet_weights_fit_the_finetune_folder_model(tmp_path):
    reference = TorchvisionAlexNet(num_classes=1000)
    torch.save(reference.state_dict(), tmp_path / "alexnet-owt.pth")
    config = finetune_folder.get_config()
    config.num_classes = 102  # e.g. a flowers folder: a 102-class head
    model = steps.create_model(config)
    fresh = nn.unbox(
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))["params"]
    )
    weights = pretrained.read_weights(str(tmp_path / "alexnet-owt.pth"), "owt", 1)
    merged, reinitialised = pretrained.merge_pretrained(weights, fresh, "alexnet-owt.pth")
    assert reinitialised == ["fc8"] and merged["fc8"] == {"kernel": None, "bias": None}
    # Spot-check the layout against torch: conv1 OIHW -> HWIO, fc7 (out, in) -> (in, out).
    np.testing.assert_array_equal(
        merged["conv1"]["kernel"],
        reference.features[0].weight.detach().numpy().transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        merged["fc7"]["kernel"], reference.classifier[4].weight.detach().numpy().T
    )


@pytest.mark.slow
def test_head_is_reinitialised_when_the_class_count_differs(tfds_data_dir, five_class_run):
    config = digits_config(tfds_data_dir, init_from=five_class_run)
    mesh = sharding.create_mesh(config.mesh_shape)
    model, tx = steps.create_model(config, mesh), steps.create_optimizer(config, 10, 100)
    fresh = steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
    got = jax.device_get(pretrained.init_state(config, model, fresh).params)
    source, fresh = checkpoints.load_params(five_class_run), jax.device_get(fresh.params)
    for layer in source:
        for name in source[layer]:
            if layer == "fc8":
                assert got[layer][name].shape[-1] == 10 and source[layer][name].shape[-1] == 5
                # the model's own fresh head
                assert leaves_equal(got[layer][name], fresh[layer][name])
            else:
                assert leaves_equal(got[layer][name], source[layer][name]), (layer, name)


@pytest.mark.slow
def test_frozen_layers_are_bit_identical_and_take_no_optimizer_memory(
    tfds_data_dir, five_class_run, tmp_path
):
    frozen = ("conv1", "conv2", "conv3")
    tuned = digits_config(
        tfds_data_dir, num_train_steps=2, init_from=five_class_run, freeze=tuple(frozen)
    )
    train.train_and_evaluate(tuned, str(tmp_path / "tuned"))
    before, after = (
        checkpoints.load_params(five_class_run),
        checkpoints.load_params(tmp_path / "tuned"),
    )
    for layer in before:
        for name in before[layer]:
            if layer != "fc8":
                assert leaves_equal(after[layer][name], before[layer][name]) == (layer in frozen), (
                    layer,
                    name,
                )

    # The optimizer state holds one velocity entry per trainable number, none for frozen ones.
    model, tx = steps.create_model(tuned), steps.create_optimizer(tuned, 10, 100)
    state = jax.eval_shape(lambda: steps.init_state(jax.random.key(0), model, tx, tuned.image_size))
    velocity_size = sum(
        np.prod(leaf.shape) for leaf in jax.tree.leaves(state.opt_state.inner_state) if leaf.ndim
    )
    trainable = sum(
        array.size
        for layer, leaves in after.items()
        if layer not in frozen
        for array in leaves.values()
    )
    assert (
        velocity_size
        == trainable
        < sum(array.size for leaves in after.values() for array in leaves.values())
    )


def test_linear_probe_and_backbone_rate(tfds_data_dir):
    """One paper-SGD step from zero momentum: update = -lr * (g + 5e-4 w), with the backbone's lr scaled."""
    params = {
        "conv1": {"kernel": np.ones((2, 2)), "bias": np.ones(2)},
        "bn1": {"scale": np.ones(2)},
        "fc6": {"kernel": np.full((2, 2), 2.0)},
        "fc8": {"kernel": np.full((2, 3), 3.0)},
    }
    params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    grads = jax.tree.map(lambda x: np.full_like(x, 0.5), params)

    def first_update(**settings):
        config = digits_config(tfds_data_dir, learning_rate=0.1, **settings)
        tx = steps.create_optimizer(config, 10, 100)
        updates, _ = tx.update(grads, tx.init(params), params)
        return jax.tree.map(np.asarray, updates)

    def expected(w, lr):
        return -lr * (0.5 + 5e-4 * w)

    probe = first_update(linear_probe=True)
    assert all(
        not np.any(probe[layer][name]) for layer in ("conv1", "bn1", "fc6") for name in probe[layer]
    )
    np.testing.assert_allclose(probe["fc8"]["kernel"], expected(3.0, 0.1), rtol=1e-6)

    scaled = first_update(backbone_lr_scale=0.1, freeze=("conv1",))
    # bn1 goes with conv1
    assert not np.any(scaled["conv1"]["kernel"]) and not np.any(scaled["bn1"]["scale"])
    np.testing.assert_allclose(scaled["fc6"]["kernel"], expected(2.0, 0.01), rtol=1e-6)
    np.testing.assert_allclose(scaled["fc8"]["kernel"], expected(3.0, 0.1), rtol=1e-6)


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            dict(freeze=("conv1", "conv9")),
            r"Cannot freeze \['conv9'\]: the model's layers are conv1, conv2",
        ),
        (dict(freeze=("conv1",), linear_probe=True), "linear_probe=True already freezes"),
        (
            dict(freeze=("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")),
            "would be frozen: nothing would train",
        ),
    ],
)
def test_bad_freeze_settings_are_clear(tfds_data_dir, settings, message):
    config = digits_config(tfds_data_dir, **settings)
    with pytest.raises(ValueError, match=message):
        tx = steps.create_optimizer(config, 10, 100)
        tx.init(
            {f"conv{i}": {"kernel": np.ones(1)} for i in range(1, 6)}
            | {f"fc{i}": {"kernel": np.ones(1)} for i in (6, 7, 8)}
        )


@pytest.mark.slow
def test_mismatched_shapes_name_the_layer(tfds_data_dir, five_class_run, tmp_path):
    fresh = {
        "conv1": {"kernel": np.zeros((5, 5, 3, 64)), "bias": np.zeros(64)},
        "conv3": {"kernel": np.zeros((3, 3, 128, 192)), "bias": np.zeros(192)},
        "fc8": {"kernel": np.zeros((512, 10)), "bias": np.zeros(10)},
    }
    wrong = jax.tree.map(np.copy, fresh)
    wrong["conv3"]["kernel"] = np.zeros((3, 3, 128, 96))
    with pytest.raises(
        pretrained.PretrainedError,
        match=r"Layer conv3: .*kernel \(3, 3, 128, 96\) vs \(3, 3, 128, 192\)",
    ):
        pretrained.merge_pretrained(wrong, fresh, "here")
    wrong = jax.tree.map(np.copy, fresh)
    wrong["fc8"]["kernel"] = np.zeros((256, 10))  # more than the class count differs
    with pytest.raises(pretrained.PretrainedError, match="Layer fc8"):
        pretrained.merge_pretrained(wrong, fresh, "here")
    # asked: no error
    merged, reinitialised = pretrained.merge_pretrained(wrong, fresh, "here", reinit=["fc8"])
    assert reinitialised == ["fc8"] and merged["fc8"] == {"kernel": None, "bias": None}
    assert merged["conv3"]["kernel"].shape == (3, 3, 128, 192)
    missing = {key: value for key, value in fresh.items() if key != "conv3"}
    with pytest.raises(pretrained.PretrainedError, match=r"layers missing there: \['conv3'\]"):
        pretrained.merge_pretrained(missing, fresh, "here")

    # End to end: weights of a 32x32 run into a 40x40 model (fc6's input differs); nothing is trained.
    config = digits_config(
        tfds_data_dir,
        num_train_steps=1,
        image_size=40,
        resize_size=40,
        init_from=os.path.join(five_class_run, "checkpoints", "3"),
    )
    with pytest.raises(
        pretrained.PretrainedError,
        match=r"Layer fc6: .*\(1152, 512\) vs \(2048, 512\).*reinit_layers=fc6",
    ):
        train.train_and_evaluate(config, str(tmp_path / "target"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train.train_and_evaluate(
            digits_config(tfds_data_dir, init_from=str(tmp_path / "nothing")), str(tmp_path / "t2")
        )


def test_class_subset_and_few_labels_per_class(tfds_data_dir):
    digits = dict(
        dataset="digits",
        data_dir=tfds_data_dir,
        image_size=32,
        resize_size=32,
        color_stats="dataset",
    )
    full = input_pipeline.load_data(input_pipeline.InputConfig(**digits))
    subset = input_pipeline.load_data(
        input_pipeline.InputConfig(**digits, classes=(7, 5, 9), train_examples_per_class=4)
    )
    assert subset.num_classes == 3 and subset.class_names == ("7", "5", "9")
    # numpy reference: the first 4 training examples of each kept class, in split order, relabelled 0, 1, 2.
    keep = np.concatenate([np.flatnonzero(full.train.labels == c)[:4] for c in (7, 5, 9)])
    keep.sort()
    np.testing.assert_array_equal(subset.train.images, full.train.images[keep])
    np.testing.assert_array_equal(
        subset.train.labels, np.array([{7: 0, 5: 1, 9: 2}[c] for c in full.train.labels[keep]])
    )
    test_keep = np.isin(full.eval.labels, (7, 5, 9))
    np.testing.assert_array_equal(subset.eval.images, full.eval.images[test_keep])
    assert len(subset.eval) == test_keep.sum() > 100  # the whole test set of those classes
    with pytest.raises(input_pipeline.DataError, match="distinct labels in 0..9"):
        input_pipeline.load_data(
            input_pipeline.InputConfig(
                dataset="digits",
                data_dir=tfds_data_dir,
                image_size=32,
                resize_size=32,
                classes=(3, 3),
            )
        )


def test_transfer_study_configs_and_table():
    configs = {
        method: transfer.target_config(1, method, "/runs/pre", 10, 100, 0.01)
        for method in transfer.METHODS
    }
    scratch, full, frozen, probe = configs.values()
    for config in configs.values():
        assert (
            config.classes,
            config.train_examples_per_class,
            config.batch_size,
            config.seed,
        ) == ((5, 6, 7, 8, 9), 10, 50, 1)
    assert scratch.init_from == "" and not scratch.freeze and not scratch.linear_probe
    assert full.init_from == "/runs/pre" and full.reinit_layers == ("fc8",) and not full.freeze
    assert frozen.freeze == ("conv1", "conv2", "conv3", "conv4", "conv5") and probe.linear_probe
    table = transfer.summarize({"x": [0.1, 0.2, 0.3]})
    assert "| x | 20.0% | 10.0% | 3 |" in table  # sample standard deviation of 10, 20, 30 is 10


@pytest.mark.slow
def test_transfer_study_reads_finished_runs_back(tfds_data_dir, tmp_path):
    """One seed, tiny budgets: pretraining (in epochs) and four target runs, each trained once."""
    out = str(tmp_path / "out")
    settings = dict(
        seeds=1,
        labels_per_class=8,
        pretrain_epochs=1,
        steps=2,
        learning_rate=0.01,
        out=out,
        data_dir=tfds_data_dir,
    )
    errors = transfer.run_study(**settings)
    assert list(errors) == list(transfer.METHODS)
    seed0 = os.path.join(out, "runs", "seed0")
    for letter, method in zip("abcd", transfer.METHODS):
        (final,) = [r for r in metrics(os.path.join(seed0, letter)) if "val_top1_error" in r]
        assert final["step"] == 2 and errors[method] == [final["val_top1_error"]]
    pretraining = metrics(os.path.join(seed0, "pretrain_0-4"))
    (pretraining,) = [r for r in pretraining if "val_top1_error" in r]
    assert pretraining["step"] == 719 // 64  # one epoch of the 719 training digits 0-4, batch 64
    with open(os.path.join(out, "transfer.md")) as file:
        assert file.read() == transfer.summarize(errors) + "\n"

    # A second call (an interrupted study started again) trains nothing: every run is read back.
    runs = ("pretrain_0-4", "a", "b", "c", "d")
    logs = [os.path.join(seed0, run, "metrics.jsonl") for run in runs]
    stamps = [os.path.getmtime(path) for path in logs]
    assert transfer.run_study(**settings) == errors
    assert [os.path.getmtime(path) for path in logs] == stamps

    # A finished run of another protocol in the same place is refused, not mixed into the table.
    with pytest.raises(
        ConfigError,
        match=r"seed0/a holds a finished run of another config "
        r"\(learning_rate: 0\.01 in .*, 0\.02 here\)",
    ):
        transfer.run_study(**(settings | {"learning_rate": 0.02}))


def test_the_old_module_name_runs_the_study(monkeypatch):
    """`python -m alexnet_jax.transfer` still works in a checkout; without `experiments/` (an
    installed wheel) it says where the study lives."""
    from alexnet_jax import transfer as alias

    assert alias.main is transfer.main and alias.define_flags is transfer.define_flags
    assert alias.METHODS is transfer.METHODS and alias.run_study is transfer.run_study

    monkeypatch.delitem(sys.modules, "alexnet_jax.transfer")
    monkeypatch.setitem(sys.modules, "experiments", None)  # as if experiments/ were not there
    with pytest.raises(MissingPackageError, match="experiments/ folder.*from a checkout"):
        importlib.import_module("alexnet_jax.transfer")
