"""The tool-calling agent mode beside the structured mode, on the embedded model and the shipped world.

For each seed, runs the default optimization twice, ``mutation_mode=structured`` and ``agent`` (same
max_iterations), and writes test accuracy and wall time of both, and from the agent run's trace: tool
calls and the fraction with valid arguments (per tool), request errors (LLM calls that failed), groups
that fell back to the structured call (and why), the largest prompt an agent turn sent, and agent-turn
latency. Selection inside each run uses the feedback split only; the test split is scored once.

    python benchmarks/agent_mode.py --seeds 1 --set max_iterations=2 --out benchmarks/results/agent_mode.json

Runs go to --runs-dir/<mode>/seed<k> (default runs/agent_mode/<tower hash>) and are reused when their
config matches, so a rerun only recomputes the summary. The machine is shared: wall times are what this
run took then, on this machine, under its load (recorded as the 1-minute load average before and after).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from visfeed.fileio import write_json_atomic
from visfeed.state.rundir import read_trace
from visfeed.tools.embedding.builtin_models import shipped_tower_id
from worth import run_seed

MODES = ("structured", "agent")


def agent_figures(run_dir: Path) -> dict[str, Any]:
    """Tool-call validity, request errors, fallbacks, prompt sizes and turn latency from one run's trace."""
    events = read_trace(run_dir)
    calls = [e for e in events if e["event"] == "tool_call"]
    llm = [e for e in events if e["event"] == "llm_call" and not e.get("cache_hit")]
    turns = [e for e in llm if e.get("task") == "agent"]
    per_tool: dict[str, dict[str, int]] = {}
    for c in calls:
        row = per_tool.setdefault(str(c.get("tool")), {"calls": 0, "valid": 0})
        row["calls"] += 1
        row["valid"] += int(bool(c.get("valid")))
    fallbacks = [e for e in events if e["event"] == "agent_fallback"]
    mutate_s = sum(
        float(e.get("duration_s") or 0.0) for e in events if e["event"] == "node_end" and e.get("node") == "mutate"
    )
    return {
        "tool_calls": len(calls),
        "valid_tool_calls": sum(int(bool(c.get("valid"))) for c in calls),
        "valid_fraction": (sum(int(bool(c.get("valid"))) for c in calls) / len(calls)) if calls else None,
        "per_tool": per_tool,
        "llm_calls_sent": len(llm),
        "agent_turns": len(turns),
        "request_errors": sum(1 for e in llm if e.get("error")),
        "request_error_messages": [str(e["error"])[:300] for e in llm if e.get("error")],
        "fallback_groups": len(fallbacks),
        "fallback_reasons": dict(Counter(str(e.get("reason"))[:120] for e in fallbacks)),
        "max_agent_prompt_tokens": max((int(e.get("prompt_tokens") or 0) for e in turns), default=None),
        # a call's own latency includes its wait for the one server (the groups' loops run concurrently)
        "mutate_s": mutate_s,
        "mutate_s_per_agent_turn": mutate_s / len(turns) if turns else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/agent_mode.json"))
    ap.add_argument("--runs-dir", type=Path, default=None, help="default: runs/agent_mode/<shipped tower hash>")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override (YAML value)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of structured,agent")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    tower = shipped_tower_id()
    runs_dir = args.runs_dir or Path("runs/agent_mode") / tower
    load_before = os.getloadavg()[0]
    modes = [m for m in args.modes.split(",") if m]
    runs: dict[str, list[dict[str, Any]]] = {}
    for mode in modes:
        runs[mode] = []
        for seed in range(args.seeds):
            row = run_seed(seed, runs_dir / mode, {**overrides, "llm.mutation_mode": mode})
            if mode == "agent":
                row["agent"] = agent_figures(runs_dir / mode / f"seed{seed}")
            runs[mode].append(row)
    summary = {
        mode: {
            "test_accuracy_optimized": [r["test_accuracy"]["optimized"] for r in rows],
            "test_accuracy_visual_words_control": [r["test_accuracy"].get("visual_words") for r in rows],
            "wall_s": [r["timings"].get("wall_s") for r in rows],
            "llm_calls": [r["llm"]["calls"] for r in rows],
        }
        for mode, rows in runs.items()
    }
    out = {
        "seeds": args.seeds,
        "tower_sha256_12": tower,
        "runs_dir": str(runs_dir),
        "config_overrides": {k: str(v) for k, v in overrides.items()},
        "cpu_cores": os.cpu_count(),
        # of this invocation only: runs it reused (same config) were timed by the invocation that ran them
        "load_avg_1min_this_invocation": {"start": load_before, "end": os.getloadavg()[0]},
        "summary": summary,
        "runs": runs,
    }
    write_json_atomic(args.out, out)
    for mode, s in summary.items():
        acc = ", ".join(f"{a:.2f}" for a in s["test_accuracy_optimized"])
        wall = ", ".join(f"{w:.0f}" for w in s["wall_s"] if w is not None)
        print(f"{mode:10s} test accuracy % [{acc}]  wall s [{wall}]  LLM calls {s['llm_calls']}")
    for r in runs.get("agent", []):
        a = r["agent"]
        print(
            f"agent seed {r['seed']}: {a['valid_tool_calls']}/{a['tool_calls']} tool calls valid, "
            f"{a['request_errors']} request errors, {a['fallback_groups']} fallbacks, "
            f"max agent prompt {a['max_agent_prompt_tokens']} tokens"
        )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
