"""Print the README's benchmark tables from a pytest-benchmark JSON file."""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import ctxsched


def _implementation(name: str) -> str:
    return name.split("[")[1].split("-")[-1].rstrip("]") if "[" in name else name


def main(path: str) -> None:
    data = json.loads(Path(path).read_text())
    groups: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        params = bench.get("params") or {}
        implementation = params.get("implementation", "?")
        size = params.get("size")
        if bench["group"].startswith(("pack:", "one-shot:", "truncate", "messages", "tools", "session")):
            continue
        group = bench["group"] + (f" ({size // 1_000_000} MB)" if size else "")
        groups[group][implementation] = {"mean": bench["stats"]["mean"], "bytes": bench["extra_info"].get("bytes", 0)}

    machine = data["machine_info"]
    print(f"Machine: {machine['cpu'].get('brand_raw', machine['processor'])}, {machine['cpu'].get('count')} cores, ")
    print(f"Python {platform.python_version()}, ctxsched {ctxsched.__version__}\n")
    print("| benchmark | ctxsched | tiktoken | speed-up |")
    print("|---|---|---|---|")
    for group, results in sorted(groups.items()):
        ours, theirs = results.get("ctxsched"), results.get("tiktoken")
        if ours is None:
            continue

        def show(result: dict[str, float] | None) -> str:
            if result is None:
                return "fails"
            if result["bytes"]:
                return f"{result['mean'] * 1e3:,.1f} ms ({result['bytes'] / result['mean'] / 1e6:,.1f} MB/s)"
            return f"{result['mean'] * 1e3:,.1f} ms"

        ratio = f"{theirs['mean'] / ours['mean']:,.1f}x" if theirs else "—"
        baseline = results.get("python")
        extra = f" (bare interpreter {baseline['mean'] * 1e3:,.0f} ms)" if baseline else ""
        print(f"| {group}{extra} | {show(ours)} | {show(theirs)} | {ratio} |")

    print("\nLinearity (4 MB time / 1 MB time, ctxsched):")
    for group in sorted(groups):
        if group.endswith("(4 MB)"):
            small = groups.get(group.replace("(4 MB)", "(1 MB)"), {}).get("ctxsched")
            big = groups[group].get("ctxsched")
            if small and big:
                print(f"- {group[: -len(' (4 MB)')]}: {big['mean'] / small['mean']:.2f}")

    packing: dict[str, dict[int, float]] = defaultdict(dict)
    peers: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        params = bench.get("params") or {}
        if bench["group"].startswith("pack:"):
            packing[params["counts"]][params["count"]] = bench["stats"]["mean"]
        elif bench["group"].startswith("one-shot:"):
            peers[bench["group"]][params["implementation"]] = bench["stats"]["mean"]
    if packing:
        print("\n| segments | " + " | ".join(f"{name}: per pack / per segment" for name in sorted(packing)) + " |")
        print("|---" * (len(packing) + 1) + "|")
        for count in sorted({count for results in packing.values() for count in results}):
            cells = []
            for name in sorted(packing):
                mean = packing[name].get(count)
                cells.append(f"{mean * 1e6:,.0f} us / {mean * 1e6 / count:,.2f} us" if mean else "—")
            print(f"| {count:,} | " + " | ".join(cells) + " |")
        for name, results in sorted(packing.items()):
            if 10_000 in results and 100_000 in results:
                print(f"\n10x segments (10k -> 100k), {name}: {results[100_000] / results[10_000]:.1f}x time")
    truncation: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        if bench["group"].startswith("truncate"):
            truncation[bench["group"]][bench["params"]["implementation"]] = bench["stats"]["mean"]
    if truncation:
        print("\n| truncation | ctxsched | tiktoken encode+slice+decode | speed-up |")
        print("|---|---|---|---|")
        for group, results in sorted(truncation.items()):
            ours, theirs = results.get("ctxsched"), results.get("tiktoken")
            if ours and theirs:
                print(f"| {group} | {ours * 1e3:,.2f} ms | {theirs * 1e3:,.1f} ms | {theirs / ours:,.0f}x |")
    for group, results in peers.items():
        ours = results.get("ctxsched")
        print(f"\n{group}:")
        for name, mean in sorted(results.items(), key=lambda item: item[1]):
            ratio = f" ({mean / ours:,.0f}x ctxsched)" if ours and name != "ctxsched" else ""
            print(f"- {name}: {mean * 1e3:,.2f} ms{ratio}")

    _messages_table(data)
    _session_table(data)

    package = Path(ctxsched.__file__).parent
    size = sum(file.stat().st_size for file in package.rglob("*") if file.is_file())
    print(f"\nInstalled package size: {size / 1e6:.1f} MB")


def _ratio(mine: float | None, base: float | None) -> str:
    return f" ({mine / base:,.0f}x)" if mine and base and mine != base else ""


def _messages_table(data: dict[str, Any]) -> None:
    """The chat benchmarks: warm and cold time, the ratio to ctxsched, invalid outputs, utilisation."""
    rows: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        if bench["group"].startswith(("messages", "tools")):
            row = {"seconds": bench["stats"]["mean"], **bench["extra_info"]}
            rows[bench["group"]][bench["params"]["implementation"]] = row
    for group, results in sorted(rows.items()):
        ours = results.get("ctxsched", {})
        print(f"\n{group}:\n\n| packer | warm | cold | invalid | median utilisation |\n|---|---|---|---|---|")
        for name, row in sorted(results.items(), key=lambda item: item[1]["seconds"]):
            warm = f"{row['seconds'] * 1e3:,.2f} ms{_ratio(row['seconds'], ours.get('seconds'))}"
            cold_seconds = row.get("cold_seconds")
            cold = (
                f"{cold_seconds * 1e3:,.0f} ms{_ratio(cold_seconds, ours.get('cold_seconds'))}" if cold_seconds else "—"
            )
            invalid = f"{row['invalid_outputs']} of {row['packs']}" if "packs" in row else "—"
            print(f"| {name} | {warm} | {cold} | {invalid} | {row.get('median_utilisation', '—')} |")


def _session_table(data: dict[str, Any]) -> None:
    """The prompt-cache benchmark (``benches/test_bench_session.py``): one row per implementation and budget."""
    rows = [bench for bench in data["benchmarks"] if bench["group"].startswith("session")]
    if not rows:
        return
    rows.sort(key=lambda bench: bench["params"]["budget"])  # stable: in the order they ran
    transcripts = rows[0]["extra_info"].get("transcripts", "?")
    print(f"\nsession: the agent loop of the {transcripts} largest transcripts, prompt cache at 10% for hits:\n")
    print("| packer | budget | calls | invalid | median utilisation | reuse (after the first call / by tokens) "
          "| amplification | cost per call | per turn (mean / median) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for bench in rows:
        info = bench["extra_info"]
        cells = [
            bench["params"]["implementation"], f"{bench['params']['budget']:,}", _cell(info, "calls"),
            _cell(info, "invalid_calls"), _cell(info, "median_utilisation"), (
                f"{_cell(info, 'reuse', '{:.1%}')} ({_cell(info, 'reuse_after_first', '{:.1%}')} / "
                f"{_cell(info, 'reuse_by_tokens', '{:.1%}')})"
            ),
            _cell(info, "amplification", "{:.2f}x"), _cell(info, "cost_per_call", "{:,.0f}"),
            f"{_cell(info, 'ms_per_turn_mean', '{:,.2f}')} / {_cell(info, 'ms_per_turn_median', '{:,.2f}')} ms",
        ]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


def _cell(info: dict[str, Any], name: str, fmt: str = "{}") -> str:
    value = info.get(name)
    return "—" if value is None else fmt.format(value)


if __name__ == "__main__":
    main(sys.argv[1])
