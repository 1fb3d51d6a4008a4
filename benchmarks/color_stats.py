"""Colour statistics of a CIFAR-10-sized training set: peak memory and time, streamed vs. float64.

`color_stats='dataset'` computes the per-channel mean and std and the RGB
covariance's eigenvalues/eigenvectors of every training pixel. Two ways:

  (i)  float64: all pixels as one (N*H*W, 3) float64 array, then `mean`,
       `std` and `np.cov` on it (the package's code before it streamed);
  (ii) streamed: `alexnet_jax.input_pipeline.compute_color_stats` as
       implemented, exact integer sums over chunks of the uint8 images.

Each runs in its own subprocess on the same random uint8 images
(`--images` x `--size` x `--size` x 3, default CIFAR-10's 50000x32x32x3,
seed 0): wall time of one call; the peak resident memory (ru_maxrss) of that
call above the process's resident memory just before it; and, in a second
call, the peak of memory allocated through Python and numpy (tracemalloc) above
what was allocated before it. The input array is counted in neither. The last
column is the largest difference of any statistic from (i)'s (eigenvectors
compared in absolute value, since their signs are arbitrary).

Run from the repository root:

    python benchmarks/color_stats.py [--images 50000] [--size 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

METHODS = ("float64", "streamed")


def float64_stats(images: np.ndarray):
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    mean, std = pixels.mean(0), pixels.std(0)
    eigval, eigvec = np.linalg.eigh(np.cov(pixels, rowvar=False))
    order = np.argsort(eigval)[::-1]
    return mean, np.maximum(std, 1e-3), np.clip(eigval[order], 0.0, None), eigvec[:, order]


def streamed_stats(images: np.ndarray):
    from alexnet_jax import input_pipeline

    stats = input_pipeline.compute_color_stats(images)
    return tuple(np.array(v) for v in (stats.mean, stats.std, stats.eigval, stats.eigvec))


def rss_mib() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * resource.getpagesize() / 2**20


def worker(method: str, num_images: int, size: int) -> dict:
    fn = float64_stats if method == "float64" else streamed_stats
    if method == "streamed":
        from alexnet_jax import input_pipeline  # noqa: F401  (imported before measuring)
    images = np.random.default_rng(0).integers(0, 256, (num_images, size, size, 3), dtype=np.uint8)
    before = rss_mib()
    start = time.perf_counter()
    result = fn(images)
    seconds = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before  # KiB on Linux
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn(images)
    traced = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    tracemalloc.stop()
    stats = [np.asarray(v).tolist() for v in result]
    return {
        "method": method,
        "seconds": seconds,
        "peak_rss_mib": peak_rss,
        "traced_mib": traced,
        "stats": stats,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.images, args.size)))
        return
    rows = []
    for method in METHODS:
        command = [sys.executable, __file__, "--worker", method]
        command += ["--images", str(args.images), "--size", str(args.size)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    shape = f"{args.images}x{args.size}x{args.size}x3"
    mib = args.images * args.size**2 * 3 / 2**20
    print(f"{shape} uint8 images ({mib:.0f} MiB), {args.images * args.size**2:,} pixels")
    print(
        f"{'method':<10} {'time s':>7} {'peak RSS MiB':>13} {'traced MiB':>11} {'max |diff|':>11}"
    )
    for row in rows:
        pairs = zip(row["stats"], rows[0]["stats"])
        diff = max(
            float(np.max(np.abs(np.abs(np.array(a)) - np.abs(np.array(b))))) for a, b in pairs
        )
        print(
            f"{row['method']:<10} {row['seconds']:>7.2f} {row['peak_rss_mib']:>13.1f}"
            f" {row['traced_mib']:>11.1f} {diff:>11.1e}"
        )


if __name__ == "__main__":
    main()
