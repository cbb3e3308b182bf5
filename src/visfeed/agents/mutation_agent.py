"""Agent-mode mutation: a bounded tool-calling loop over the scoring tools, ending in a submit tool.

The group's feedback (every enabled signal's lines) is the loop's fixed first step, computed by the code and put in
the first message. Then, where the provider can force a tool (OpenAI, vLLM, llama.cpp's server: see
:attr:`ProviderHandle.forces_tools`), each turn names the one tool the model must call: one
``score_descriptions`` trial per class, then ``submit_descriptions``; their arguments follow per-group
schemas (:mod:`visfeed.agents.agent_tools`) that llama.cpp enforces by grammar. Providers that cannot be
forced get the same tools plus ``visual_feedback``, ``nearest_descriptions`` and the signals' tools, and
choose for themselves within ``agent_max_steps`` turns; each enabled feedback signal may add tools of its
own (visual words: ``visual_words``) and a line about them to the system prompt.

Every turn goes through the same client (cache, budget, retries, trace) with a per-turn cache salt, so a
resumed run replays the loop from the cache. A loop that ends without a valid submission, or whose
request the provider rejects (a validation error, a context overflow), falls back to one structured call
for the group, traced as ``agent_fallback`` with its reason: one bad turn never fails the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool

from visfeed.agents.agent_tools import (
    SCORE,
    SUBMIT,
    agent_tool_specs,
    check_score,
    check_submission,
    max_argument_tokens,
)
from visfeed.agents.library import TRIAL_HELP, library_trial_tool
from visfeed.agents.prompting import FOCUSES, load_prompt, messages, quoted, render_banks
from visfeed.agents.schemas import DescriptionBatch, batch_to_map, example_batch
from visfeed.errors import OutputParseError, ProviderError
from visfeed.state.models import GraphState
from visfeed.tools.feedback.lc_tools import make_scoring_tools
from visfeed.tools.feedback.render import Readings, render_feedback
from visfeed.tools.feedback.signal import FeedbackView
from visfeed.tools.feedback.text import PROMPT
from visfeed.tools.llm.accounting import estimate_tokens
from visfeed.tools.llm.structured import message_text, parse_structured

if TYPE_CHECKING:
    from visfeed.agents.context import RunContext

log = logging.getLogger(__name__)

RESULT_CHARS = 600  # a tool result longer than this reaches the model truncated, with a note
# Prompt tokens a turn may send: the embedded server's 4096-token context less the completion cap (256)
# and the tool schemas the server writes into the system prompt; older turns are left out beyond it.
PROMPT_BUDGET_TOKENS = 3000


async def agent_mutate_group(
    ctx: RunContext,
    state: GraphState,
    group: list[int],
    iteration: int,
    gi: int,
    view: FeedbackView | None = None,
    readings: Readings | None = None,
) -> dict[str, list[str]]:
    """Run the loop for one group of classes; returns class -> new descriptions (may be empty).

    ``view`` and ``readings``: the iteration's, read (and traced) by the mutate node; without them the
    signals read the group here. The feedback is the session's as the loop starts.
    """
    cfg, session = ctx.config, ctx.session
    names = [session.classnames[c] for c in group]
    fb = session.feedback()
    if view is None:
        view = FeedbackView(session.classnames, fb, state.descriptions, iteration, state.vocabulary_extra)
    view = dataclasses.replace(view, feedback=fb)
    feedback = render_feedback(ctx.signals, view, group, PROMPT, readings)
    banks = render_banks(state.banks, names, cfg.method.bank_shown, search=cfg.search.crossover == "library")
    exclude = {n: [*state.descriptions.get(n, [])] for n in names}
    forced = ctx.client.handle.forces_tools
    session_tools = {t.name: t for t in make_scoring_tools(session)}
    session_tools |= {t.name: t for s in ctx.signals for t in s.tools(session, view)}
    library = cfg.search.crossover == "library" and bool(state.library)
    if library:  # a trial is the library search with the candidates added, not a replacement set
        session_tools[SCORE] = library_trial_tool(ctx, state)
    specs: list[BaseTool | dict[str, Any]] = [
        *agent_tool_specs(names, cfg.method.n_new, score_help=TRIAL_HELP if library else None)
    ]
    system = load_prompt("agent").substitute(n=cfg.method.n_new)
    if not forced:  # a model that chooses its tools gets all of them
        specs += [t for name, t in session_tools.items() if name != SCORE]
        system += "\n" + load_prompt("agent_explore").substitute()
        system += "".join("\n" + note for s in ctx.signals if (note := s.agent_note()))
    # forced: one trial per class, then the submission (the last turn is always the submission)
    plan = [*[SCORE] * min(len(names), cfg.llm.agent_max_steps - 1), SUBMIT] if forced else []
    first = (
        f"{feedback}{banks}\nClasses to improve: {quoted(names)}. Write {cfg.method.n_new} new descriptions for each."
    )
    if plan:
        first += "\n" + _instruction(plan[0], names, 0, cfg.method.n_new, [])
    msgs: list[BaseMessage] = [SystemMessage(content=system), HumanMessage(content=first)]
    trials: list[str] = []
    cap = max(cfg.resolved_max_tokens, max_argument_tokens(names, cfg.method.n_new))
    reason = f"no valid submission in {len(plan) or cfg.llm.agent_max_steps} turns"
    for step in range(len(plan) or cfg.llm.agent_max_steps):
        try:
            reply = await ctx.client.ainvoke(
                _fit(msgs, specs), tools=specs, tool_choice=plan[step] if plan else None, max_tokens=cap,
                task="agent", cache_salt=f"agent:it{iteration}:g{gi}:s{step}",
            )  # fmt: skip
        except ProviderError as exc:  # the request was refused or the server failed: the group falls back
            reason = f"request failed: {exc}"
            break
        msgs.append(reply)
        if not reply.tool_calls and not reply.invalid_tool_calls:
            try:
                batch = parse_structured(message_text(reply), DescriptionBatch)
            except OutputParseError:
                msgs.append(HumanMessage(content=f"Call {SUBMIT} with your new descriptions now."))
                continue
            return batch_to_map(batch, names, limit=cfg.method.n_new, exclude=exclude)
        submitted, results = _answer_calls(ctx, reply, names, session_tools, iteration, trials)
        msgs += results
        if submitted is not None:
            return batch_to_map(submitted, names, limit=cfg.method.n_new, exclude=exclude)
        if plan and step + 1 < len(plan):  # llama.cpp's template drops tool messages: results go in the user turn
            msgs.append(HumanMessage(content=_instruction(plan[step + 1], names, step + 1, cfg.method.n_new, trials)))
    return await _fallback(ctx, state, names, feedback, banks, exclude, iteration, gi, reason)


def _instruction(tool: str, names: list[str], step: int, n: int, trials: list[str]) -> str:
    """What a forced turn asks for: a trial for the next class, or the submission with the trials so far."""
    done = ("Trials so far:\n" + "\n".join(trials) + "\n") if trials else ""
    if tool == SCORE:
        return f"{done}Try {n} new descriptions for {quoted([names[step % len(names)]])} with {SCORE}."
    return (
        f"{done}Now call {SUBMIT} with {n} new descriptions for each of {quoted(names)}: keep trial descriptions "
        "that raised accuracy, replace the others."
    )


def _answer_calls(
    ctx: RunContext,
    reply: AIMessage,
    names: list[str],
    tools: dict[str, BaseTool],
    iteration: int,
    trials: list[str],
) -> tuple[DescriptionBatch | None, list[BaseMessage]]:
    """Run a turn's tool calls; every call is traced with whether its arguments were valid."""
    out: list[BaseMessage] = []
    submitted: DescriptionBatch | None = None
    for bad in reply.invalid_tool_calls:  # arguments that are not JSON
        call_id = bad.get("id") or "invalid"
        unparsed = f"error: the arguments are not valid JSON: {str(bad.get('args'))[:200]!r}"
        ctx.tracer.emit("tool_call", iteration=iteration, tool=bad.get("name"), args=bad.get("args"),
                        summary=unparsed, valid=False)  # fmt: skip
        out.append(ToolMessage(content=unparsed, tool_call_id=call_id))
    for call in reply.tool_calls:
        name, args, call_id = call["name"], call.get("args", {}), call.get("id") or f"call_{len(out)}"
        error: str | None
        if name == SUBMIT:
            batch, error = check_submission(args, names)
            content = error or "submitted"
            submitted = submitted or batch
        else:
            error = check_score(args, names) if name == SCORE else None
            content = error or _run_tool(tools.get(name), name, args, call_id, trials)
            error = error or (content if content.startswith("error:") else None)
        ctx.tracer.emit("tool_call", iteration=iteration, tool=name, args=args, summary=content[:300],
                        valid=error is None)  # fmt: skip
        out.append(ToolMessage(content=_clip(content), tool_call_id=call_id))
    return submitted, out


def _run_tool(tool: BaseTool | None, name: str, args: dict[str, Any], call_id: str, trials: list[str]) -> str:
    """Execute one scoring tool; errors go back to the model as the tool's answer (a bad argument never ends the run)."""
    if tool is None:
        return f"error: unknown tool {name!r}; use one of the listed tools"
    try:
        out = tool.invoke({"type": "tool_call", "name": name, "args": args, "id": call_id})
    except Exception as exc:
        return f"error: {exc}"
    content = str(out.content) if isinstance(out, ToolMessage) else str(out)
    artifact = getattr(out, "artifact", None)
    if name == SCORE and isinstance(artifact, dict):
        trials.append(
            f"- {artifact['class_name']}: {'; '.join(args['descriptions'])} -> class accuracy "
            f"{artifact['class_accuracy']:.0%} ({artifact['class_accuracy_change']:+.0%})"
        )
    return content


def _clip(text: str) -> str:
    if len(text) <= RESULT_CHARS:
        return text
    return text[:RESULT_CHARS] + f" ... ({len(text) - RESULT_CHARS} more characters left out)"


def _fit(msgs: list[BaseMessage], specs: list[BaseTool | dict[str, Any]]) -> list[BaseMessage]:
    """The messages to send: the oldest tool turns are left out (with a note) while the prompt exceeds the budget.

    The first two messages (instructions, feedback) and the latest turn always stay; a forced loop's
    instructions carry the trials so far, so nothing the model needs is lost.
    """
    schema_tokens = estimate_tokens(json.dumps([s for s in specs if isinstance(s, dict)]))

    def size(ms: list[BaseMessage]) -> int:
        return schema_tokens + sum(estimate_tokens(message_text(m)) for m in ms)

    head, turns = msgs[:2], _turns(msgs[2:])
    dropped = 0
    while len(turns) > 1 and size([*head, *(m for t in turns for m in t)]) > PROMPT_BUDGET_TOKENS:
        turns.pop(0)
        dropped += 1
    if not dropped:
        return msgs
    note = HumanMessage(content=f"({dropped} earlier tool turn(s) left out to fit the context.)")
    return [*head, note, *(m for t in turns for m in t)]


def _turns(msgs: list[BaseMessage]) -> list[list[BaseMessage]]:
    """Messages cut into turns, each starting at an assistant message (tool answers stay with their call)."""
    turns: list[list[BaseMessage]] = []
    for m in msgs:
        if isinstance(m, AIMessage) or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


async def _fallback(
    ctx: RunContext,
    state: GraphState,
    names: list[str],
    feedback: str,
    banks: str,
    exclude: dict[str, list[str]],
    iteration: int,
    gi: int,
    reason: str,
) -> dict[str, list[str]]:
    """The documented fallback: one structured call for the group, traced with why the loop ended."""
    log.info("agent for group %d (%s) ends without a submission (%s); falling back to one call", gi, names, reason)
    ctx.tracer.emit("agent_fallback", iteration=iteration, group=names, reason=reason)
    fallback = messages(
        "mutate", feedback=feedback, banks=banks, classes=quoted(names), n=ctx.config.method.n_new, focus=FOCUSES[0]
    )
    batch = await ctx.client.astructured(
        fallback,
        DescriptionBatch,
        task="mutate",
        example=example_batch(),
        cache_salt=f"agent-fallback:it{iteration}:g{gi}",
    )
    return batch_to_map(batch, names, limit=ctx.config.method.n_new, exclude=exclude)
