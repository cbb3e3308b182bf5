"""Valid tool-call arguments from the embedded model: free schemas and free choice vs forced, constrained tools.

The same first agent turn is asked for the first N class groups of the shipped world (seed 0; current
descriptions: the visual-words control; the feedback text with each class's visual words), once per arm:

- ``free``: what agent mode sent before issue 30: the scoring tools' own schemas (``class_name`` any
  string, descriptions any strings) and a ``submit_descriptions`` taking the structured mode's schema,
  with ``tool_choice="auto"``;
- ``forced``: what it sends now: ``score_descriptions`` forced, its class name an enum of the group's
  classes and its descriptions short word-only strings (llama.cpp turns the schema into a grammar).

A call counts as valid when its arguments meet the tool's contract (a class of the group, non-empty
descriptions; for a submission every class of the group) and the tool runs. Prints and writes JSON.

    python benchmarks/agent_calls.py --groups 4 --out benchmarks/results/agent_calls.json
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from visfeed.agents.agent_tools import SCORE, SUBMIT, agent_tool_specs, check_score, check_submission
from visfeed.agents.nodes.common import classes_to_mutate, group_by_confusion
from visfeed.agents.prompting import load_prompt, quoted
from visfeed.agents.resources import AGENT_CHAT_FORMAT, build_scoring, visual_words_control, word_source
from visfeed.agents.schemas import DescriptionBatch
from visfeed.fileio import write_json_atomic
from visfeed.state.config import RunConfig
from visfeed.tools.feedback_text import compact_feedback
from visfeed.tools.lc_tools import make_scoring_tools
from visfeed.tools.llm import LLMClient, resolve_provider
from visfeed.tools.session import ScoringSession

ARMS = ("free", "forced")


def free_submit() -> dict[str, Any]:
    """The submit tool as agent mode declared it before: the structured mode's schema, class names free."""
    spec = convert_to_openai_tool(DescriptionBatch)
    spec["function"]["name"] = SUBMIT
    return spec


def check(name: str, args: dict[str, Any], names: list[str], tools: dict[str, Any]) -> str | None:
    """Why a call breaks its tool's contract (None: valid)."""
    if name == SCORE:
        return check_score(args, names)
    if name == SUBMIT:
        return check_submission(args, names)[1]
    tool = tools.get(name)
    if tool is None:
        return f"unknown tool {name!r}"
    try:
        tool.invoke(args)
    except Exception as exc:
        return f"error: {exc}"
    return None


async def turn(
    client: LLMClient, arm: str, session: ScoringSession, group: list[int], feedback: str, n: int
) -> dict[str, Any]:
    names = [session.classnames[c] for c in group]
    scoring = {t.name: t for t in make_scoring_tools(session)}
    system = load_prompt("agent").substitute(n=n)
    ask = f"{feedback}\nClasses to improve: {quoted(names)}. Write {n} new descriptions for each."
    if arm == "free":
        tools: list[Any] = [*scoring.values(), free_submit()]
        system += "\n" + load_prompt("agent_explore").substitute()
        choice = None
    else:
        tools = list(agent_tool_specs(names, n))
        ask += f"\nTry {n} new descriptions for {quoted(names[:1])} with {SCORE}."
        choice = SCORE
    t0 = time.perf_counter()
    reply = await client.ainvoke(
        [SystemMessage(system), HumanMessage(ask)],
        tools=tools,
        tool_choice=choice,
        task=arm,
        cache_salt=f"{arm}:{group}",
    )
    calls = [
        {"tool": c["name"], "args": c["args"], "why_invalid": check(c["name"], c["args"], names, scoring)}
        for c in reply.tool_calls
    ]
    calls += [
        {"tool": c.get("name"), "args": c.get("args"), "why_invalid": "not JSON"} for c in reply.invalid_tool_calls
    ]
    return {"group": names, "latency_s": time.perf_counter() - t0, "text": str(reply.content)[:300], "calls": calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/agent_calls.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(seed=0, run_dir=Path(tmp) / "run", llm={"mutation_mode": "agent"})
        data = build_scoring(cfg)
        session = ScoringSession(
            data.encoder, data.classnames, data.feedback.image_emb, data.feedback.labels,
            template=cfg.resolved_template, device=cfg.backbone.device, lam=cfg.method.lam, m=cfg.method.top_m,
            logit_scale=cfg.method.logit_scale or data.logit_scale or 100.0,
        )  # fmt: skip
        control = visual_words_control(data, cfg) or {c: [c] for c in data.classnames}
        session.set_descriptions(control)
        fb = session.feedback()
        words = word_source(data)
        probe = words.probe([]) if words is not None else None
        groups = group_by_confusion(fb.lam_confusion, classes_to_mutate(fb, cfg.method.mutate_scope), cfg.group_size)
        groups = groups[: args.groups]
        handle = resolve_provider(
            "local", temperature=cfg.resolved_temperature, local_seed=0, local_chat_format=AGENT_CHAT_FORMAT,
            timeout_s=600.0,
        )  # fmt: skip
        client = LLMClient(handle, cfg.llm_settings.model_copy(update={"timeout_s": 600.0, "max_retries": 0}))
        rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
        with handle:
            for group in groups:
                seen = {}
                if probe is not None:
                    for c in group:
                        cw = probe.words(c, fb.top_confused[c], k=cfg.signals.visual_words.count)
                        seen[cw.class_name] = cw
                text = compact_feedback(group, session.classnames, control, fb, words=seen)
                for arm in ARMS:
                    row = asyncio.run(turn(client, arm, session, group, text, cfg.method.n_new))
                    rows[arm].append(row)
                    print(
                        arm,
                        row["group"],
                        f"{row['latency_s']:.0f}s",
                        [(c["tool"], c["why_invalid"]) for c in row["calls"]],
                    )
    summary = {}
    for arm, arm_rows in rows.items():
        calls = [c for r in arm_rows for c in r["calls"]]
        valid = sum(c["why_invalid"] is None for c in calls)
        summary[arm] = {
            "turns": len(arm_rows),
            "turns_without_a_call": sum(not r["calls"] for r in arm_rows),
            "tool_calls": len(calls),
            "valid_tool_calls": valid,
            "valid_fraction": valid / len(calls) if calls else None,
            "valid_calls_per_turn": valid / len(arm_rows) if arm_rows else None,
            "mean_latency_s": sum(r["latency_s"] for r in arm_rows) / len(arm_rows) if arm_rows else None,
        }
    out = {
        "world_seed": 0,
        "groups": len(groups),
        "model": handle.model,
        "chat_format": AGENT_CHAT_FORMAT,
        "cpu_cores": os.cpu_count(),
        "load_avg_1min_end": os.getloadavg()[0],
        "summary": summary,
        "turns": rows,
    }
    write_json_atomic(args.out, out)
    for arm, s in summary.items():
        print(
            f"{arm:7s} {s['valid_tool_calls']}/{s['tool_calls']} calls valid, {s['turns_without_a_call']} of {s['turns']} "
            f"turns without a call, {s['mean_latency_s']:.0f} s per turn"
        )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
