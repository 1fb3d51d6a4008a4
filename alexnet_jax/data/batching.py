"""How batches are formed: the shuffled training stream, the padded evaluation pass, and the rows
of each global batch that one process loads.

Randomness is stateless: the example at global position g of the training stream is augmented
with the seed (seed, g), and epoch e is shuffled with (seed, e).
"""

from __future__ import annotations

import math
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from alexnet_jax.data.augment import eval_image, eval_pixels, train_image, train_pixels
from alexnet_jax.data.sources import Data, DataError, InputConfig, SyntheticSource, TfdsSource
from alexnet_jax.sharding import BatchRows

__all__ = ["train_dataset", "eval_dataset"]


def _checked_rows(global_batch_size: int, rows: BatchRows | None) -> BatchRows:
    """`rows` (the whole batch when None), checked against the batch size."""
    rows = BatchRows.whole(global_batch_size) if rows is None else rows
    if rows.global_size != global_batch_size:
        raise ValueError(
            f"{rows} are not one of {rows.num_groups} equal parts of a global batch of "
            f"{global_batch_size}"
        )
    return rows


def _refuse_synthetic(data: Data) -> None:
    if isinstance(data.train, SyntheticSource):
        raise DataError(
            "dataset='synthetic' has no host pipeline: its batches are drawn on the devices by "
            "alexnet_jax.synthetic (train_batches, eval_batches), which training and evaluation use. "
            "For images on the host, use a real dataset."
        )


def _finish(
    dataset: tf.data.Dataset, batch_size: int, config: InputConfig, normalized: bool
) -> tf.data.Dataset:
    if normalized and config.half_precision:
        dataset = dataset.map(
            lambda ex: {**ex, "image": tf.cast(ex["image"], tf.bfloat16)},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def train_dataset(
    data: Data,
    config: InputConfig,
    global_batch_size: int,
    start_step: int = 0,
    rows: BatchRows | None = None,
    normalized: bool = True,
) -> tf.data.Dataset:
    """The endless training stream of this process, from global step `start_step` on.

    Each global batch holds examples at global positions
    [step * global_batch_size, (step + 1) * global_batch_size) of a stream
    that visits the training set once per epoch in an order shuffled with
    (seed, epoch); a process gets `rows` of it (`sharding.data_rows`: the
    rows of the data shards its devices hold; None: all). For in-memory and
    file datasets the global batches do not depend on the number of
    processes. For datasets streamed from TFRecord files each group of
    processes that load the same rows reads its own share of the files.
    Batches: image (rows.size, S, S, 3), label (rows.size,) int32, mask all True.
    normalized=False: image stays uint8 (`augment.train_pixels`) and `lighting` (rows.size, 3)
    float32 comes beside it, for `alexnet_jax.pixels.normalize` to finish on the devices: a
    quarter of the bytes, and no float arithmetic on the host.
    """
    config = config.validated()
    _refuse_synthetic(data)
    rows = _checked_rows(global_batch_size, rows)
    stats, seed = data.color_stats, config.seed
    source = data.train

    if isinstance(source, TfdsSource):
        examples = _streamed_train_examples(source, config, start_step, rows)
    else:
        size = len(source)
        start_epoch, offset = divmod(start_step * global_batch_size, size)

        def epoch_order(epoch):
            """(global position, example index) pairs of one epoch, shuffled with (seed, epoch)."""
            order = tf.random.experimental.stateless_shuffle(
                tf.range(size, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
            )
            positions = epoch * size + tf.range(size, dtype=tf.int64)
            return tf.data.Dataset.from_tensor_slices((positions, order))

        order = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_order).skip(offset)
        # This process's rows of every global batch.
        mine = tf.constant(rows.indices())
        order = (
            order.batch(global_batch_size)
            .map(lambda positions, indices: (tf.gather(positions, mine), tf.gather(indices, mine)))
            .unbatch()
        )

        def example(position, example_index):
            image, label = source.lookup(example_index)
            return {"image": image, "label": label, "position": position}

        examples = order.map(example, num_parallel_calls=tf.data.AUTOTUNE)

    def augment(ex):
        example_seed = tf.cast(tf.stack([tf.constant(seed, tf.int64), ex["position"]]), tf.int64)
        out = {"label": tf.cast(ex["label"], tf.int32), "mask": tf.constant(True)}
        if normalized:
            return {"image": train_image(ex["image"], example_seed, config, stats), **out}
        image, lighting = train_pixels(ex["image"], example_seed, config, stats)
        return {"image": image, "lighting": lighting, **out}

    augmented = examples.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(augmented, rows.size, config, normalized)


def _streamed_train_examples(source: TfdsSource, config, start_step: int, rows: BatchRows):
    """Per-epoch shuffled TFRecord stream of this group's share of the records; resumes inside
    an epoch.

    With at least as many files as groups, group g reads every G-th file;
    with fewer (small data sets), every group reads all files and keeps every
    G-th record of their common, identically shuffled order. Either way each
    record belongs to one group.
    """
    builder = source.builder
    split = builder.info.splits[source.split]
    files = [os.fspath(p) for p in split.filepaths]
    lengths = list(split.shard_lengths)
    group, groups = rows.group, rows.num_groups
    split_files = len(files) >= groups
    if split_files:
        files, lengths = files[group::groups], lengths[group::groups]
        group_examples = sum(lengths)  # one epoch of this group's files
    else:
        group_examples = len(range(group, sum(lengths), groups))
    if group_examples == 0:
        raise DataError(
            f"{source.split} leaves no examples to group {group} of the {groups} groups of "
            "processes that load different rows of each batch; use fewer data shards "
            "(mesh_shape) or more data."
        )
    features = builder.info.features
    start_epoch, skip = divmod(start_step * rows.size, group_examples)
    seed = config.seed

    def epoch_examples(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        shuffled = tf.random.experimental.stateless_shuffle(tf.constant(files), seed=epoch_seed)
        records = tf.data.Dataset.from_tensor_slices(shuffled).interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(16, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if not split_files:
            # Before the shuffle, which is not the same in every group.
            records = records.shard(groups, group)
        shuffle_seed = tf.cast(epoch_seed[1] * 1_000_003 + seed, tf.int64)
        records = records.shuffle(config.shuffle_buffer, seed=shuffle_seed)
        return records.enumerate().map(lambda i, record: (epoch * group_examples + i, record))

    records = tf.data.Dataset.range(start_epoch, 2**31).flat_map(epoch_examples).skip(skip)

    def decode(position, record):
        example = features.deserialize_example(record, decoders=source.decoders)
        return {
            "image": example["image"],
            "label": example["label"],
            "position": position * groups + group,
        }

    return records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def eval_dataset(
    data: Data,
    config: InputConfig,
    global_batch_size: int,
    rows: BatchRows | None = None,
    normalized: bool = True,
) -> tuple[tf.data.Dataset, int]:
    """One pass over the evaluation split; returns (dataset, number of batches).

    A process gets `rows` of every global batch (as in `train_dataset`). The
    last batch is completed with padding whose mask is False, so every
    example is seen exactly once over the global batches; every process
    yields the same number of batches, and processes that load the same rows
    load the same examples. Batches: image (rows.size, S, S, 3) or
    (rows.size, 10, S, S, 3) for the ten crops, label (rows.size,) int32, mask (rows.size,) bool.
    normalized=False: image stays uint8 (`augment.eval_pixels`), as in `train_dataset`.
    """
    config = config.validated()
    _refuse_synthetic(data)
    rows = _checked_rows(global_batch_size, rows)
    batch = rows.size
    stats, source = data.color_stats, data.eval

    if isinstance(source, TfdsSource):
        # Each group of processes reads its part of the split; parts may differ by one example
        # and every group pads to the largest.
        num_batches = max(1, math.ceil(math.ceil(len(source) / rows.num_groups) / batch))
        shard = tfds.even_splits(source.split, rows.num_groups)[rows.group]
        examples = source.builder.as_dataset(
            split=shard, shuffle_files=False, decoders=source.decoders
        )
        examples = examples.map(
            lambda ex: {"image": ex["image"], "label": ex["label"], "mask": tf.constant(True)}
        )
        padding_image = tf.zeros([config.resize_size, config.resize_size, 3], tf.uint8)
        padding = tf.data.Dataset.from_tensors(
            {"image": padding_image, "label": tf.constant(0, tf.int64), "mask": tf.constant(False)}
        ).repeat()
        examples = examples.concatenate(padding).take(num_batches * batch)
    else:
        size = len(source)
        num_batches = max(1, math.ceil(size / global_batch_size))

        mine = tf.constant(rows.indices())

        def example(local_position):
            step, row = local_position // batch, local_position % batch
            position = step * global_batch_size + tf.gather(mine, row)
            image, label = source.lookup(tf.minimum(position, size - 1))
            return {"image": image, "label": label, "mask": position < size}

        examples = tf.data.Dataset.range(num_batches * batch).map(
            example, num_parallel_calls=tf.data.AUTOTUNE
        )

    def process(ex):
        image = (
            eval_image(ex["image"], config, stats)
            if normalized
            else eval_pixels(ex["image"], config)
        )
        return {"image": image, "label": tf.cast(ex["label"], tf.int32), "mask": ex["mask"]}

    processed = examples.map(process, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(processed, batch, config, normalized), num_batches
