"""The benchmark report's arithmetic, on timings whose answers are known (no timing here)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_compare", Path(__file__).parents[1] / "benchmarks" / "compare.py"
)
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)


def _timings(extra: float, rng: random.Random, n: int = 400) -> dict[str, list[float]]:
    """Raw reps drifting by 3x over the run, and the library ``extra`` seconds slower each rep."""
    raw = [rng.uniform(300e-6, 900e-6) for _ in range(n)]
    return {"raw": raw, "lib": [r + extra for r in raw]}


def test_overheads_come_from_rep_by_rep_differences_despite_drift():
    rng = random.Random(1)
    one = _timings(50e-6, rng)
    every = _timings(50e-6 + 29 * 4e-6, rng)
    text = compare.overheads(one, every)
    assert text.startswith("50 µs (50–50) per trace, 4.0 µs (4.0–4.0) per extra saved value")


def test_paired_ratio_and_its_interval():
    rng = random.Random(2)
    raw = [rng.uniform(0.1, 0.3) for _ in range(300)]
    timings = {"raw": raw, "lib": [r * 1.05 for r in raw]}
    assert compare.paired_ratio(timings) == pytest.approx(1.05)
    assert compare.interval(timings) == "1.050–1.050"
    other = {"raw": raw, "lib": [r * 1.10 for r in raw]}
    low, high = (float(x) for x in compare.interval(timings, other).split("–"))
    assert low == pytest.approx(1.05 / 1.10, abs=1e-3)
    assert high == pytest.approx(1.05 / 1.10, abs=1e-3)


def test_report_rows_and_memory_medians():
    rng = random.Random(3)
    results = {
        name: {"lenslab": {**_timings(extra, rng), "diff": [0.0]}}
        for name, extra in (("no_compute_one", 40e-6), ("no_compute_all", 40e-6 + 29 * 2e-6))
    }
    memory = {"lenslab": {"lib": [27.0, 40.0, 30.0], "raw": [30.0, 31.0, 29.0]}}
    text = compare.report(results, memory, ["lenslab"])
    assert "| 30 tiny Linear layers, save 1 value |" in text
    assert "- lenslab: 40 µs (40–40) per trace, 2.0 µs (2.0–2.0) per extra saved value" in text
    assert "8 invokes 30 MB (27–40) vs raw batch 30 MB (29–31) (x1.00)" in text
