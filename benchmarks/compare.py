"""Time lenslab and nnsight against raw Hugging Face, interleaved, and write a markdown table.

Two long-lived worker processes (``worker.py``), one per library, each timing its library and
raw Hugging Face (plain torch hooks doing the same work) rep by rep. Rounds alternate between
the workers so both see the same machine conditions. Usage: ``benchmarks/run`` (which builds
the separate nnsight environment first).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {  # name: (description, reps per round)
    "no_compute_one": ("30 tiny Linear layers, save 1 value", 500),
    "no_compute_all": ("30 tiny Linear layers, save all 30", 300),
    "gpt2_one": ("tiny GPT-2, save one layer", 50),
    "smol_one": ("SmolLM2, save one layer", 25),
    "smol_all": ("SmolLM2, save all 30 layers", 25),
    "smol_edit": ("SmolLM2, in-place edit of an MLP output", 25),
    "smol_skip": ("SmolLM2, .skip one MLP (zeros)", 25),
    "smol_source": ("SmolLM2, read one call inside attention (.source)", 25),
    "smol_batch8": ("SmolLM2, batch of 8 prompts", 16),
    "smol_invokes8": ("SmolLM2, 8 invokes in one trace", 16),
    "smol_generate": ("SmolLM2, 20 greedy tokens, steering every step", 4),
}


MEMORY_RUNS = 3


class Worker:
    def __init__(self, python: str, library: str, model_dir: str) -> None:
        self.library = library
        self.process = subprocess.Popen(
            [python, str(HERE / "worker.py"), library, model_dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"},
        )

    def run(self, case: str, reps: int = 0, memory_of: str | None = None) -> dict:
        assert self.process.stdin and self.process.stdout
        command = {"case": case, "reps": reps}
        if memory_of:
            command["memory_of"] = memory_of
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.library} worker died on {case}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def paired_ratio(timings: dict[str, list]) -> float:
    """Median of lib/raw over adjacent reps: drift on the machine cancels out rep by rep."""
    return statistics.median(_pair_ratios(timings))


def _pair_ratios(timings: dict[str, list]) -> list[float]:
    return [lib / raw for raw, lib in zip(timings["raw"], timings["lib"])]


def interval(*timings: dict[str, list]) -> str:
    """95% bootstrap interval of ``paired_ratio`` (of the first over the second, given two).

    On a noisy machine a ratio's last digit means little; the interval says whether a target
    is met beyond the noise.
    """
    samples = [_pair_ratios(t) for t in timings]
    low, high = _bootstrap(lambda m: m[0] / m[1] if len(m) == 2 else m[0], samples)
    return f"{low:.3f}–{high:.3f}"


def _bootstrap(
    statistic: Callable[[list[float]], float], samples: list[list[float]], resamples: int = 2000
) -> tuple[float, float]:
    """95% interval of ``statistic`` of the samples' medians, resampling each sample."""
    rng = random.Random(0)
    estimates = []
    for _ in range(resamples):
        estimates.append(statistic([statistics.median(rng.choices(s, k=len(s))) for s in samples]))
    low, *_, high = statistics.quantiles(estimates, n=40)
    return low, high


def overheads(one: dict[str, list], every: dict[str, list]) -> str:
    """Microseconds per trace and per extra saved value, from rep-by-rep differences.

    Per trace: the median of (library - raw) over adjacent reps saving one value; per extra
    value: the same for all 30 values, less the per-trace part, over the 29 extra values.
    """
    diffs = [[(lib - raw) * 1e6 for raw, lib in zip(t["raw"], t["lib"])] for t in (one, every)]

    def per_trace(m: list[float]) -> float:
        return m[0]

    def per_value(m: list[float]) -> float:
        return (m[1] - m[0]) / 29

    parts = []
    for statistic, unit in ((per_trace, "per trace"), (per_value, "per extra saved value")):
        value = statistic([statistics.median(d) for d in diffs])
        low, high = _bootstrap(statistic, diffs)
        digits = 0 if unit == "per trace" else 1
        parts.append(f"{value:.{digits}f} µs ({low:.{digits}f}–{high:.{digits}f}) {unit}")
    return ", ".join(parts)


def spread(times: list[float]) -> str:
    q = statistics.quantiles(times, n=4)
    return f"{q[0] * 1e3:.3g}–{q[2] * 1e3:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nnsight-python", default=str(HERE / ".venv-nnsight/bin/python"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", default=str(HERE / "results" / "latest.md"))
    parser.add_argument("--cases", nargs="*", choices=list(CASES), help="a subset (quick looks)")
    args = parser.parse_args()
    cases = {name: CASES[name] for name in (args.cases or CASES)}

    from lenslab.models import smollm2

    model_dir = str(smollm2.ensure_converted())
    workers = [Worker(sys.executable, "lenslab", model_dir)]
    if Path(args.nnsight_python).exists():
        workers.append(Worker(args.nnsight_python, "nnsight", model_dir))
    results: dict[str, dict[str, dict[str, list]]] = {}
    for case, (_, reps) in cases.items():
        print(f"[bench] {case}", file=sys.stderr, flush=True)
        merged: dict[str, dict[str, list]] = {
            w.library: {"raw": [], "lib": [], "diff": []} for w in workers
        }
        for _ in range(args.rounds):
            for worker in workers:  # alternate the libraries round by round
                answer = worker.run(case, reps)
                for key in ("raw", "lib"):
                    merged[worker.library][key] += answer[key]
                merged[worker.library]["diff"].append(answer["diff"])
        results[case] = merged
    for worker in workers:
        worker.close()
    memory: dict[str, dict[str, list[float]]] = {}
    for worker in workers if "smol_invokes8" in cases else []:  # each in a fresh process
        python = worker.process.args[0]
        memory[worker.library] = {"raw": [], "lib": []}
        for _ in range(MEMORY_RUNS):  # a single high-water mark moves by megabytes run to run
            for which in ("raw", "lib"):
                fresh = Worker(python, worker.library, model_dir)
                answer = fresh.run("smol_invokes8", memory_of=which)
                memory[worker.library][which].append(answer["mb"])
                fresh.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report(results, memory, [w.library for w in workers]))
    print(Path(args.out).read_text())


def report(results: dict, memory: dict, libraries: list[str]) -> str:
    import torch
    import transformers

    lines = [
        f"# lenslab benchmarks ({date.today()})",
        "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}; torch threads 2. Times are medians (interquartile "
        "range) in ms. Each library runs in its own process against raw Hugging Face doing the "
        "same work there (tokenizing the same prompts, plain torch hooks keeping or editing the "
        "same values), the two timed alternately rep by rep; a ratio is the median of the "
        "rep-by-rep ratios, so drift on the machine cancels out; beside it, its 95% bootstrap "
        "interval. `lenslab / nnsight` divides the two libraries' ratios. `max |diff|` "
        "compares the library's values with the raw hooks' values. Compare ratios taken in "
        "the same run only.",
        "",
    ]
    header = "| case | raw HF + hooks | lenslab | lenslab / raw | max \\|diff\\| |"
    rule = "|---|---|---|---|---|"
    if "nnsight" in libraries:
        header += " nnsight | nnsight / raw | max \\|diff\\| | lenslab / nnsight |"
        rule += "---|---|---|---|"
    lines += [header, rule]
    for case, (description, _) in CASES.items():
        if case not in results:
            continue
        lens = results[case]["lenslab"]
        row = (
            f"| {description} | {median_ms(lens['raw']):.3g} ({spread(lens['raw'])}) "
            f"| {median_ms(lens['lib']):.3g} ({spread(lens['lib'])}) "
            f"| {paired_ratio(lens):.3f} ({interval(lens)}) | {max(lens['diff']):.1e} |"
        )
        if "nnsight" in libraries:
            nn = results[case]["nnsight"]
            row += (
                f" {median_ms(nn['lib']):.3g} ({spread(nn['lib'])}) "
                f"| {paired_ratio(nn):.3f} ({interval(nn)}) | {max(nn['diff']):.1e} "
                f"| {paired_ratio(lens) / paired_ratio(nn):.3f} ({interval(lens, nn)}) |"
            )
        lines.append(row)
    both = "no_compute_one" in results and "no_compute_all" in results
    if both:
        lines += [
            "",
            "Overheads on the no-compute model (medians of the rep-by-rep differences between "
            "the library and raw, with 95% bootstrap intervals):",
            "",
        ]
    for library in libraries if both else []:
        one, every = results["no_compute_one"][library], results["no_compute_all"][library]
        lines.append(f"- {library}: {overheads(one, every)}")
    if memory:
        lines += [
            "",
            f"Peak memory above the resident baseline, 8 prompts of SmolLM2 (median of "
            f"{MEMORY_RUNS} fresh processes each, range in brackets):",
            "",
        ]
    for library, m in memory.items():
        lib, raw = statistics.median(m["lib"]), statistics.median(m["raw"])
        lines.append(
            f"- {library}: 8 invokes {lib:.0f} MB ({min(m['lib']):.0f}–{max(m['lib']):.0f}) vs "
            f"raw batch {raw:.0f} MB ({min(m['raw']):.0f}–{max(m['raw']):.0f}) "
            f"(x{lib / max(raw, 1e-9):.2f})"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
