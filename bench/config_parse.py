"""What loading the config pair costs, against the raw `tomllib` parse of the same bytes.

Times, on the cookbook pair (rootfs-overlay/etc/oxwrt), the median of:
  floor      tomllib.loads of the public file and the secrets example;
  decode     msgspec.convert of the already merged document into schema.config.Config;
  validate   schema.validate.validate of the decoded Config;
  load       schema.load.load_text: parse both, merge secrets, decode and validate (the
             path every config entry point takes);
  tomlkit    tomlkit.parse of both texts (what keeping comments would cost on every load).
and prints each as a ratio to the floor. No assertions: figures only.

    .venv/bin/python bench/config_parse.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import msgspec
import tomlkit

from schema import secrets as sec
from schema.config import Config
from schema.load import load_text
from schema.validate import validate

FLOOR = "tomllib.loads (floor)"
COOKBOOK = Path(__file__).resolve().parent.parent / "rootfs-overlay" / "etc" / "oxwrt"


def medians_ms(works: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median milliseconds of each work. The works take turns within every run, so a burst of
    load from elsewhere on a shared machine hits them all alike and the ratios stay stable."""
    for work in works.values():  # warm caches and msgspec's type info
        for _ in range(3):
            work()
    samples: dict[str, list[int]] = {name: [] for name in works}
    for _ in range(runs):
        for name, work in works.items():
            start = time.perf_counter_ns()
            work()
            samples[name].append(time.perf_counter_ns() - start)
    return {name: statistics.median(ns) / 1e6 for name, ns in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per measure")
    runs = parser.parse_args().runs

    public = (COOKBOOK / "oxwrt.toml").read_text(encoding="utf-8")
    secrets = (COOKBOOK / "oxwrt.secrets.toml.example").read_text(encoding="utf-8")
    merged = sec.merge(tomllib.loads(public), tomllib.loads(secrets))
    loaded = load_text(public, secrets)
    if not loaded.ok:  # timing a failing load would measure the error path
        sys.exit("cookbook does not load:\n" + "\n".join(map(str, loaded.issues)))

    lines = public.count("\n") + secrets.count("\n")
    size = len(public.encode()) + len(secrets.encode())
    print(f"cookbook pair: {lines} lines, {size} bytes; {runs} runs each, medians")

    config = msgspec.convert(merged, Config)
    works: dict[str, Callable[[], object]] = {
        FLOOR: lambda: (tomllib.loads(public), tomllib.loads(secrets)),
        "decode only (msgspec.convert)": lambda: msgspec.convert(merged, Config),
        "validate only (schema.validate)": lambda: validate(config),
        "parse+validate (load_text)": lambda: load_text(public, secrets),
        "tomlkit.parse": lambda: (tomlkit.parse(public), tomlkit.parse(secrets)),
    }

    measured = medians_ms(works, runs)
    floor = measured.pop(FLOOR)
    print(f"{FLOOR:32s} {floor:8.3f} ms")
    for name, ms in measured.items():
        print(f"{name:32s} {ms:8.3f} ms   {name.split(' (')[0]} / tomllib = {ms / floor:.2f}x")


if __name__ == "__main__":
    main()
