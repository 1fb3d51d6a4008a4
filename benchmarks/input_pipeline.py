"""Training input pipeline on CPU: images/s per core, tf.data (this package) vs. a PyTorch DataLoader.

Both pipelines do the paper's training-time work (Krizhevsky et al. 2012,
4.1) on ImageNet-size JPEG files: read and decode the JPEG, take the central
square of the shorter side and resize it to 256x256 (bilinear; PIL always
antialiases when shrinking, the package only beyond 2x), a random 224x224
crop, a random horizontal flip, PCA lighting with the ImageNet
eigenvalues/eigenvectors (alpha ~ N(0, 0.1)), and normalize with the ImageNet
mean/std, giving float32 batches of `--batch` images:

  (i)  tf.data: `alexnet_jax.input_pipeline` as the trainer uses it,
       `InputConfig(dataset='image_folder', train_augment='paper',
       color_stats='imagenet')`, `load_data`, `train_dataset(normalized=False)`,
       iterated with `.as_numpy_iterator()` -> NHWC uint8 crops and each image's
       PCA lighting shift: the trainer does the float arithmetic (/255, + shift,
       - mean, / std) on its devices (`alexnet_jax.pixels`), so it costs the host
       nothing; and, for comparison, `train_dataset()` doing that arithmetic on the
       host too -> NHWC float32, as the package did before;
  (ii) PyTorch: a `torch.utils.data.Dataset` doing the same steps with PIL
       and numpy (torchvision is not used: its PyPI wheel does not import next
       to the CPU torch build), in a `DataLoader` with `num_workers` worker
       processes -> NCHW float32 tensors, the usual recipe (ToTensor, Normalize and
       lighting in the workers).

All run on (a) the full-size JPEGs, (b) their 256x256 copy, the paper's
"down-sampled to a fixed resolution of 256x256" done once: for the package its
resized copy (`resized_copy=True`, written by `prepare_data`, i.e.
`--mode=prepare`: JPEG quality 95, read back with the accurate DCT), for
PyTorch the same central squares resized by PIL and saved as JPEG files of
quality 95, which its Dataset then only decodes and crops; and (c) the same
squares stored as raw pixels, for the package `resized_copy_format='raw'`, for
PyTorch one memory-mapped (N, 256, 256, 3) uint8 .npy file: nothing to decode.

Each runs twice per data: on all the CPU cores this process may use (tf.data with its
defaults, AUTOTUNE; the DataLoader with one worker per core), and on one core
(tf.data with `threading.private_threadpool_size = 1`,
`max_intra_op_parallelism = 1` and `autotune.cpu_budget = 1`; the DataLoader
with `num_workers=1`). Every row is timed over `--batches` batches after
`--warmup` untimed batches (worker start-up, autotuning, page cache); for
the DataLoader both counts are rounded up to whole rounds of `num_workers`
batches, since each worker builds whole batches. It reports images/s,
images/s per core used, the CPU time the pipeline's processes actually spent
(process time of this process plus, for the DataLoader, its worker
processes, from /proc) as images per CPU-second, the cores one A100 (10,000-16,000 AlexNet
images/s) would need at that images per CPU-second, and the tf.data / PyTorch
ratios of both. Wall-clock rates are only meaningful on an otherwise idle
machine, so each row also shows how many cores other processes kept busy
meanwhile (/proc/stat); images per CPU-second is much less sensitive to them.

The images are `--num_images` JPEGs (quality 90) in an image-folder tree
`root/train/<class>/*.jpg` (two classes, plus a small `root/val` split,
which `load_data` requires), each a random crop of one of the two photos of
`sklearn.datasets.load_sample_images()` resized to a typical ImageNet size
(500x375, 375x500, 500x333, 333x500, 400x400, 500x500, 500x400, 400x500).
They are written to a temporary directory, or to `--data DIR` (reused when
DIR/train exists). `load_data` decodes every file once to find unreadable
ones; that verification is timed separately and not part of any row.

Run from the repository root:

    python benchmarks/input_pipeline.py [--batch 128] [--num_images 512] [--batches 12] [--warmup 2] [--data DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow's first import

import numpy as np
import tensorflow as tf
import torch
from PIL import Image

from alexnet_jax import input_pipeline as ip
from alexnet_jax.datasets import resized_copy

IMAGE_SIZE, RESIZE_SIZE, PCA_STD = 224, 256, 0.1
JPEG_QUALITY = 90
# (W, H)
SIZES = (
    (500, 375),
    (375, 500),
    (500, 333),
    (333, 500),
    (400, 400),
    (500, 500),
    (500, 400),
    (400, 500),
)
VAL_IMAGES_PER_CLASS = 4
COPY_QUALITY = 95  # the resized copy's default JPEG quality (config.resized_copy_quality)
# What one A100 trains AlexNet at, in images/s: the CPU cores a pipeline needs to keep up.
A100_RATES = (10_000, 16_000)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# Data


def write_jpegs(root: Path, num_images: int, seed: int = 0) -> None:
    """root/{train,val}/<class>/*.jpg: random crops of the sklearn sample photos at ImageNet-like sizes."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    rng = np.random.default_rng(seed)
    names = [Path(name).stem for name in photos.filenames]  # 'china', 'flower': one class per photo
    counts = {"train": num_images, "val": VAL_IMAGES_PER_CLASS * len(names)}
    for split, count in counts.items():
        for i in range(count):
            label = i % len(names)
            photo = Image.fromarray(photos.images[label])
            width, height = SIZES[rng.integers(len(SIZES))]
            # The largest crop of the target's aspect ratio, scaled by 60-100%, at a random place.
            scale = min(photo.width / width, photo.height / height) * rng.uniform(0.6, 1.0)
            crop_w, crop_h = round(width * scale), round(height * scale)
            left, top = (
                rng.integers(photo.width - crop_w + 1),
                rng.integers(photo.height - crop_h + 1),
            )
            image = photo.crop((left, top, left + crop_w, top + crop_h)).resize(
                (width, height), Image.BICUBIC
            )
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            directory = root / split / names[label]
            directory.mkdir(parents=True, exist_ok=True)
            image.save(directory / f"{i:06d}.jpg", quality=JPEG_QUALITY)


def list_train_files(root: Path) -> tuple[list[str], list[int]]:
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / "train" / name).glob("*.jpg")):
            paths.append(str(path))
            labels.append(label)
    return paths, labels


def prepared_copy(config, root: Path, copy_format: str = "jpeg"):
    """The package's resized copy of the folder (`--mode=prepare`), and the time it took."""
    copy_config = ip.InputConfig(
        **{
            **vars(config),
            "resized_copy": True,
            "resized_copy_format": copy_format,
            "data_dir": str(root / "tfds"),
        }
    )
    start = time.perf_counter()
    data = ip.prepare_data(copy_config)
    return copy_config, data, time.perf_counter() - start


def square_copy_files(paths, directory: Path) -> list[str]:
    """The same preprocessing done once for PyTorch: each training JPEG's central square of the
    shorter side, resized by PIL to 256x256 and saved at the copy's quality (as a PyTorch user
    would pre-resize ImageNet); the DataLoader then only decodes and crops."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i, path in enumerate(paths):
        target = directory / f"{i:06d}.jpg"
        if not target.exists():
            with Image.open(path) as file:
                square = central_square(file.convert("RGB"))
            square.save(target, quality=COPY_QUALITY)
        out.append(str(target))
    return out


def square_copy_array(paths, target: Path) -> str:
    """The same squares as raw pixels for PyTorch: one (N, 256, 256, 3) uint8 .npy file."""
    if not target.exists():
        squares = np.empty((len(paths), RESIZE_SIZE, RESIZE_SIZE, 3), np.uint8)
        for i, path in enumerate(paths):
            with Image.open(path) as file:
                squares[i] = np.asarray(central_square(file.convert("RGB")))
        np.save(target, squares)
    return str(target)


def central_square(image: Image.Image) -> Image.Image:
    """The central square of the shorter side at RESIZE_SIZE (PIL's bilinear, antialiased)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != RESIZE_SIZE:
        image = image.resize((RESIZE_SIZE, RESIZE_SIZE), Image.BILINEAR)
    return image


# ---------------------------------------------------------------------------
# (ii) PyTorch: PIL + numpy in a Dataset


class PaperTrainDataset(torch.utils.data.Dataset):
    """JPEG -> central square -> 256x256 -> random 224 crop -> flip -> PCA lighting -> normalize -> CHW."""

    def __init__(self, paths: list[str], labels: list[int]):
        self.paths, self.labels = paths, labels
        self._init_arithmetic()

    def square(self, index: int) -> np.ndarray:
        """The 256x256 uint8 square of example `index` (decoded; resized unless it is the copy)."""
        with Image.open(self.paths[index]) as file:
            # the central square, as the package crops it before resizing; no-op on the copy
            return np.asarray(central_square(file.convert("RGB")))

    def _init_arithmetic(self):
        self.eigval = np.asarray(ip.IMAGENET_EIGVAL, np.float32)
        self.eigvec = np.asarray(ip.IMAGENET_EIGVEC, np.float32)  # columns are the components
        self.mean = np.asarray(ip.IMAGENET_MEAN, np.float32)
        self.std = np.asarray(ip.IMAGENET_STD, np.float32)
        self.rng = np.random.default_rng(0)  # replaced in each worker by `seed_worker`

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        rng = self.rng
        square = self.square(index)
        left, top = (
            rng.integers(RESIZE_SIZE - IMAGE_SIZE + 1),
            rng.integers(RESIZE_SIZE - IMAGE_SIZE + 1),
        )
        # random 224 of the 256 square
        image = square[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        pixels = image.astype(np.float32) * (1.0 / 255.0)
        shift = self.eigvec @ (rng.normal(0.0, PCA_STD, 3).astype(np.float32) * self.eigval)
        pixels = (pixels + (shift - self.mean)) / self.std
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))), self.labels[index]


class RawSquaresDataset(PaperTrainDataset):
    """The same steps on the squares stored as raw pixels: one (N, 256, 256, 3) uint8 .npy file,
    memory-mapped; nothing to decode."""

    def __init__(self, array_path: str, labels: list[int]):
        self.array_path, self.labels = array_path, labels
        self.squares = None  # opened in each process (a memory map does not pickle)
        self._init_arithmetic()

    def square(self, index: int) -> np.ndarray:
        if self.squares is None:
            self.squares = np.load(self.array_path, mmap_mode="r")
        return self.squares[index]


def seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed % 2**32)


def torch_batches(dataset, batch: int, num_workers: int, num_batches: int):
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=num_batches * batch)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
    )
    return loader


# ---------------------------------------------------------------------------
# Timing


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have spent (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def time_batches(iterator, warmup: int, batches: int, batch: int, worker_pids=lambda: ()) -> dict:
    """Wall and CPU time of `batches` batches after `warmup` untimed ones, and other processes' CPU use meanwhile."""
    for _ in range(warmup):
        images, _ = next(iterator)
    pids = list(worker_pids())
    cpu_start = time.process_time() + sum(map(proc_cpu_seconds, pids))
    busy_start = machine_busy_seconds()
    start = time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
        assert images.shape[0] == batch, images.shape
    wall = time.perf_counter() - start
    cpu = time.process_time() + sum(map(proc_cpu_seconds, pids)) - cpu_start
    others = max(0.0, machine_busy_seconds() - busy_start - cpu)
    return dict(
        wall_s=wall,
        cpu_s=cpu,
        other_cpu_s=others,
        images=batches * batch,
        image_shape=list(images.shape),
        image_dtype=str(images.dtype),
    )


def bench_tf(
    data, config, batch: int, warmup: int, batches: int, one_core: bool, normalized: bool
) -> dict:
    dataset = ip.train_dataset(data, config, batch, normalized=normalized)
    if one_core:
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        options.autotune.cpu_budget = 1
        dataset = dataset.with_options(options)
    iterator = ((ex["image"], ex["label"]) for ex in dataset.as_numpy_iterator())
    result = time_batches(iterator, warmup, batches, batch)
    del iterator, dataset  # stops tf.data's background prefetching before the next row
    gc.collect()
    return result


def bench_torch(dataset, batch: int, warmup: int, batches: int, num_workers: int) -> dict:
    # Each worker builds whole batches, so they arrive num_workers at a time: count whole rounds.
    warmup, batches = (-(-n // num_workers) * num_workers for n in (warmup, batches))
    loader = torch_batches(dataset, batch, num_workers, warmup + batches)
    iterator = iter(loader)
    pids = [worker.pid for worker in getattr(iterator, "_workers", [])]  # their CPU time counts
    result = time_batches(iterator, warmup, batches, batch, lambda: pids)
    del iterator, loader  # shuts the workers down
    gc.collect()
    return result


# ---------------------------------------------------------------------------
# Report


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| images | pipeline | cores | images/s | images/s per core | images per CPU-second | CPU use (cores busy) | other processes (cores busy) | cores for 10k / 16k img/s | tf.data / torch (images/s per core) | tf.data / torch (images per CPU-s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    torch_rows = {
        (row["data"], row["cores"]): row for row in rows if row["pipeline"].startswith("torch")
    }
    for row in rows:
        ratios = ["", ""]
        if row["pipeline"].startswith("tf.data"):
            other = torch_rows[row["data"], row["cores"]]
            ratios = [f"{row[key] / other[key]:.2f}x" for key in ("per_core", "images_per_cpu_s")]
        accelerator = " / ".join(f"{rate / row['images_per_cpu_s']:.0f}" for rate in A100_RATES)
        lines.append(
            f"| {row['data']} | {row['pipeline']} | {row['cores']} | {row['images_per_s']:.1f} | {row['per_core']:.1f} "
            f"| {row['images_per_cpu_s']:.1f} | {row['cpu_s'] / row['wall_s']:.2f} | {row['other_cpu_s'] / row['wall_s']:.2f} "
            f"| {accelerator} | {ratios[0]} | {ratios[1]} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="images per batch (default 128)")
    parser.add_argument(
        "--num_images", type=int, default=512, help="training JPEGs to generate (default 512)"
    )
    parser.add_argument(
        "--batches", type=int, default=12, help="timed batches per row (default 12)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per row (default 2)")
    parser.add_argument(
        "--data",
        type=Path,
        help="image-folder root to reuse (generated there if DIR/train is absent)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    run_start = time.perf_counter()
    cores = len(os.sched_getaffinity(0))
    temporary = None
    root = args.data
    if root is None:
        temporary = root = Path(tempfile.mkdtemp(prefix="alexnet_jpegs_"))
    try:
        start = time.perf_counter()
        generated = not (root / "train").is_dir()
        if generated:
            write_jpegs(root, args.num_images)
        generation_s = time.perf_counter() - start
        paths, labels = list_train_files(root)
        sizes = [os.path.getsize(p) for p in paths]

        config = ip.InputConfig(
            dataset="image_folder",
            folder_root=str(root),
            image_size=IMAGE_SIZE,
            resize_size=RESIZE_SIZE,
            train_augment="paper",
            color_stats="imagenet",
            pca_lighting_std=PCA_STD,
        )
        start = time.perf_counter()
        data = ip.load_data(config)
        verification_s = time.perf_counter() - start
        verified = len(data.train) + len(data.eval)

        copy_config, copy_data, copy_s = prepared_copy(config, root)
        copy_paths = square_copy_files(paths, root / "square_copy")
        copy_kib = np.mean([os.path.getsize(p) for p in copy_paths]) / 1024
        raw_config, raw_data, raw_s = prepared_copy(config, root, "raw")
        raw_array = square_copy_array(paths, root / "square_copy.npy")
        raw_kib = resized_copy.disk_bytes(raw_data.train.builder) / len(raw_data.train) / 1024

        plan = []
        for data_name, tf_data, tf_config, torch_data in (
            ("full-size", data, config, PaperTrainDataset(paths, labels)),
            (
                f"{RESIZE_SIZE}x{RESIZE_SIZE} JPEG copy",
                copy_data,
                copy_config,
                PaperTrainDataset(copy_paths, labels),
            ),
            (
                f"{RESIZE_SIZE}x{RESIZE_SIZE} raw copy",
                raw_data,
                raw_config,
                RawSquaresDataset(raw_array, labels),
            ),
        ):
            for used in sorted({cores, 1}, reverse=True):
                threads = "" if used == cores else ", private threadpool 1"
                for normalized, what in ((False, "uint8 crops"), (True, "normalized on the host")):
                    plan.append(
                        (
                            data_name,
                            f"tf.data (alexnet_jax.input_pipeline), {what}{threads}",
                            used,
                            lambda d=tf_data, c=tf_config, u=used, n=normalized: bench_tf(
                                d, c, args.batch, args.warmup, args.batches, u != cores, n
                            ),
                        )
                    )
                plan.append(
                    (
                        data_name,
                        f"torch DataLoader + PIL + numpy, num_workers={used}",
                        used,
                        lambda t=torch_data, u=used: bench_torch(
                            t, args.batch, args.warmup, args.batches, u
                        ),
                    )
                )
        rows = []
        for data_name, name, used, bench in plan:
            result = bench()
            rate = result["images"] / result["wall_s"]
            rows.append(
                dict(
                    data=data_name,
                    pipeline=name,
                    cores=used,
                    images_per_s=rate,
                    per_core=rate / used,
                    images_per_cpu_s=result["images"] / result["cpu_s"],
                    **result,
                )
            )
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)

    machine = (
        f"tensorflow {tf.__version__}, torch {torch.__version__}, Pillow {Image.__version__}, "
        f"{cores} CPU cores usable ({os.cpu_count()} in the machine)"
    )
    print(f"Machine: {machine}")
    print(
        f"{len(paths)} training JPEGs (quality {JPEG_QUALITY}, mean {np.mean(sizes) / 1024:.0f} KiB) "
        + (f"generated in {generation_s:.1f} s" if generated else f"reused from {root}")
    )
    print(
        f"load_data verification (decodes all {verified} train+val files once, not timed below): {verification_s:.1f} s "
        f"= {verified / verification_s:.0f} images/s"
    )
    print(
        f"resized copy ({RESIZE_SIZE}x{RESIZE_SIZE}, JPEG quality {COPY_QUALITY}): the package's "
        f"--mode=prepare {copy_s:.1f} s (with its decode check and colour statistics); "
        f"PyTorch's, made once with PIL, mean {copy_kib:.0f} KiB; raw pixels: the package's "
        f"{raw_s:.1f} s, {raw_kib:.0f} KiB per image, PyTorch's one .npy file of the PIL squares"
    )
    print(
        f"batch {args.batch}, {args.batches} timed batches per row after {args.warmup} warm-up batches; "
        "images per batch: "
        + "; ".join(f"{r['pipeline']} {r['image_shape']} {r['image_dtype']}" for r in rows[:3])
        + "\n"
    )
    print(markdown_table(rows))
    busiest = max(row["other_cpu_s"] / row["wall_s"] for row in rows)
    if busiest > 0.2:
        print(
            f"\nWarning: other processes kept up to {busiest:.1f} cores busy during the timed rows; "
            "the images/s columns understate both pipelines (compare images per CPU-second)."
        )
    total_s = time.perf_counter() - run_start
    print(f"\ntotal {total_s:.0f} s")
    if args.json:
        settings = dict(
            machine=machine,
            batch=args.batch,
            batches=args.batches,
            warmup=args.warmup,
            num_images=len(paths),
            verification_s=verification_s,
            prepare_copy_s=copy_s,
            prepare_raw_copy_s=raw_s,
            raw_copy_kib_per_image=raw_kib,
            jpeg_copy_kib_per_image_torch=copy_kib,
            generation_s=generation_s if generated else None,
            total_s=total_s,
        )
        args.json.write_text(json.dumps(dict(settings, rows=rows), indent=2) + "\n")


if __name__ == "__main__":
    main()
