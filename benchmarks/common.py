"""What every benchmark shares: timing, command-line flags, the machine line, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax


def median_ms(fn, args, repeats: int, warmup: int) -> float:
    """Median wall time of `fn(*args)` in milliseconds, waiting for the results."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def parse_args(description: str, batch: int = 32) -> argparse.Namespace:
    """--batch, --repeats, --warmup and --json, the flags of every benchmark."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch", type=int, default=batch, help=f"images per call (default {batch})")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per row, compilation included (default 2)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser.parse_args()


def report(args: argparse.Namespace, rows: list[dict], table: str) -> None:
    """Prints the machine, the settings and the table; writes the rows to --json if asked."""
    machine = f"jax {jax.__version__}, devices {jax.devices()}, {os.cpu_count()} CPU cores"
    print(f"Machine: {machine}")
    print(f"batch {args.batch}, median of {args.repeats} calls after {args.warmup} warm-up calls\n")
    print(table)
    if args.json:
        settings = dict(machine=machine, batch=args.batch, repeats=args.repeats, warmup=args.warmup)
        args.json.write_text(json.dumps(dict(settings, rows=rows), indent=2) + "\n")
