"""Agent-mode mutation: a bounded tool-calling loop over the scoring tools, ending in a submit tool.

The LLM may call ``visual_feedback``, ``score_descriptions`` (try a list, see the accuracy it would give)
and ``nearest_descriptions``, then must call ``submit_descriptions`` with new descriptions per class.
Every turn goes through the same client (cache, budget, retries, trace) with a per-turn cache salt, so a
resumed run replays the loop from the cache. After ``agent_max_steps`` turns without a submission the
group falls back to one structured call, so a wandering model never stalls the run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import ValidationError

from visfeed.agents.prompting import FOCUSES, load_prompt, messages, quoted, render_banks
from visfeed.agents.schemas import DescriptionBatch, batch_to_map, example_batch
from visfeed.errors import OutputParseError
from visfeed.state.models import GraphState
from visfeed.tools.feedback_text import compact_feedback
from visfeed.tools.lc_tools import make_scoring_tools
from visfeed.tools.llm.structured import message_text, parse_structured

if TYPE_CHECKING:
    from visfeed.agents.context import RunContext

log = logging.getLogger(__name__)

SUBMIT = "submit_descriptions"


def _submit_tool() -> BaseTool:
    def submit_descriptions(classes: list[dict[str, Any]]) -> str:
        return "submitted"

    return StructuredTool.from_function(
        func=submit_descriptions,
        name=SUBMIT,
        description="Submit your final new descriptions, one entry per class (ends your task).",
        args_schema=DescriptionBatch,
    )


async def agent_mutate_group(
    ctx: RunContext, state: GraphState, group: list[int], iteration: int, gi: int
) -> dict[str, list[str]]:
    """Run the loop for one group of classes; returns class -> new descriptions (may be empty)."""
    cfg = ctx.config
    session = ctx.session
    names = [session.classnames[c] for c in group]
    fb = session.feedback()
    probe = ctx.words.probe(state.vocabulary_extra) if ctx.words is not None else None
    tools = [*make_scoring_tools(session, probe), _submit_tool()]
    by_name = {t.name: t for t in tools}
    exclude = {n: [*state.descriptions.get(n, [])] for n in names}
    msgs: list[BaseMessage] = [
        SystemMessage(
            content=load_prompt("agent").substitute(n=cfg.n_new)
            + ("\n" + load_prompt("agent_words").substitute() if probe is not None else "")
        ),
        HumanMessage(
            content=compact_feedback(group, session.classnames, state.descriptions, fb)
            + render_banks(state.banks, names, cfg.bank_shown)
            + f"\nClasses to improve: {quoted(names)}. Write {cfg.n_new} new descriptions for each."
        ),
    ]
    for step in range(cfg.agent_max_steps):
        reply = await ctx.client.ainvoke(
            msgs, tools=tools, task="agent", cache_salt=f"agent:it{iteration}:g{gi}:s{step}"
        )
        msgs.append(reply)
        if not reply.tool_calls:
            try:
                batch = parse_structured(message_text(reply), DescriptionBatch)
            except OutputParseError:
                msgs.append(HumanMessage(content=f"Call {SUBMIT} with your new descriptions now."))
                continue
            return batch_to_map(batch, names, limit=cfg.n_new, exclude=exclude)
        submitted: dict[str, list[str]] | None = None
        for call in reply.tool_calls:
            name, args, call_id = call["name"], call.get("args", {}), call.get("id") or f"call_{step}"
            if name == SUBMIT:
                try:
                    batch = DescriptionBatch.model_validate(args)
                except ValidationError as exc:
                    msgs.append(ToolMessage(content=f"invalid submission: {exc}", tool_call_id=call_id))
                    continue
                submitted = batch_to_map(batch, names, limit=cfg.n_new, exclude=exclude)
                ctx.tracer.emit("tool_call", iteration=iteration, tool=SUBMIT, args=args, summary="submitted")
                msgs.append(ToolMessage(content="submitted", tool_call_id=call_id))
                continue
            msgs.append(_run_tool(ctx, by_name.get(name), name, args, call_id, iteration))
        if submitted is not None:
            return submitted
    log.info("agent for group %d made no submission in %d steps; falling back to one call", gi, cfg.agent_max_steps)
    ctx.tracer.emit("agent_fallback", iteration=iteration, group=names)
    fallback = messages(
        "mutate",
        feedback=compact_feedback(group, session.classnames, state.descriptions, fb),
        banks=render_banks(state.banks, names, cfg.bank_shown),
        classes=quoted(names),
        n=cfg.n_new,
        focus=FOCUSES[0],
    )
    batch = await ctx.client.astructured(
        fallback,
        DescriptionBatch,
        task="mutate",
        example=example_batch(),
        cache_salt=f"agent-fallback:it{iteration}:g{gi}",
    )
    return batch_to_map(batch, names, limit=cfg.n_new, exclude=exclude)


def _run_tool(
    ctx: RunContext, tool: BaseTool | None, name: str, args: dict[str, Any], call_id: str, iteration: int
) -> ToolMessage:
    """Execute one tool call; errors go back to the model as the tool's answer (and into the trace)."""
    content: str
    if tool is None:
        content, summary = f"unknown tool {name!r}; use one of the listed tools", "unknown tool"
    else:
        try:
            out = tool.invoke({"type": "tool_call", "name": name, "args": args, "id": call_id})
            content = str(out.content) if isinstance(out, ToolMessage) else str(out)
            summary = str(content)[:300]
        except Exception as exc:  # a bad argument must not end the run: the model sees the error
            content, summary = f"error: {exc}", f"error: {exc}"
    ctx.tracer.emit("tool_call", iteration=iteration, tool=name, args=args, summary=summary)
    return ToolMessage(content=str(content), tool_call_id=call_id)
