"""The library crossover through the whole graph: the search's vectors are what the sessions score, the LLM's
items join the libraries, the memory says what the search kept and dropped, and no selection reads the test
split."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from tests.agents.conftest import CountingTest, fruit_chat, make_split
from tests.agents.test_checkpoints import final_state
from tests.agents.test_visual_words_graph import _mutate_prompts, _vocab

from visfeed.agents.finalize import score_methods
from visfeed.agents.run import optimize
from visfeed.state.models import LibraryItem
from visfeed.state.rundir import LIBRARY_FILE, read_trace
from visfeed.tools.search.items import accuracy_of, build_library


def _run(base_config, make_resources, name: str, **changes):
    chat = fruit_chat()
    res = dataclasses.replace(make_resources(chat, validation=True), vocabulary=_vocab())
    cfg = base_config(
        name, **{"search": {"crossover": "library"}, "method": {"max_iterations": 3, "patience": 3}, **changes}
    )
    result = optimize(cfg, resources=res)
    assert result.status == "completed", result.error
    return cfg, res, chat, result


def test_the_loop_scores_the_searched_vectors_and_remembers_what_the_search_kept(base_config, make_resources) -> None:
    cfg, res, _, result = _run(base_config, make_resources, "lib")
    library = json.loads((cfg.run_dir / LIBRARY_FILE).read_text())
    best = json.loads((cfg.run_dir / "descriptions_raw.json").read_text())
    items = [[LibraryItem(**{k: v for k, v in x.items() if k != "chosen"}) for x in library[n]] for n in res.classnames]
    sources = {x.source for per in items for x in per}
    assert {"name", "oneshot", "words"} <= sources and any(s.startswith("mutate") for s in sources)
    for per, name in zip(items, res.classnames, strict=True):
        assert set(best[name]) <= {x.text for x in per}
        assert [x["text"] for x in library[name] if x["chosen"]] == [x.text for x in per if x.text in best[name]]
    # the sessions' figure is the searched vectors' figure (one convention: the mean over the chosen prompts)
    lib = build_library(res.classnames, items, res.encoder.embed_texts, mean_of_cosines=True)
    chosen = [lib.index(c, best[n]) for c, n in enumerate(res.classnames)]
    assert result.optimized is not None
    assert np.isclose(accuracy_of(lib.vectors(chosen), res.feedback.image_emb, res.feedback.labels),
                      result.optimized.feedback_accuracy)  # fmt: skip
    searches = list(read_trace(cfg.run_dir, events={"library_search"}))
    assert len(searches) == result.iterations + 1 and all(s["picked_on"] == "validation" for s in searches)
    later = [p for p in _mutate_prompts(cfg.run_dir) if "Memory of earlier edits" in p]
    assert any("dropped by the search (do not reuse)" in p for p in later)


def test_withheld_llm_items_make_no_mutation_call_and_add_no_llm_item(base_config, make_resources) -> None:
    cfg, _, _, result = _run(
        base_config, make_resources, "bare", search={"crossover": "library", "library_llm_items": False}
    )
    tasks = [e["task"] for e in read_trace(cfg.run_dir, events={"llm_call"})]
    assert "mutate" not in tasks
    library = json.loads((cfg.run_dir / LIBRARY_FILE).read_text())
    assert {x["source"] for per in library.values() for x in per} <= {"name", "words", "visual_words"}
    assert result.iterations >= 1


@pytest.mark.parametrize("seed", [7, 8])
def test_no_selection_reads_the_test_split(base_config, make_resources, seed: int) -> None:
    """Score one finished run against two different test splits: every figure a selection could see (feedback,
    validation) and every row's choice must be the same; only test accuracies may differ."""
    cfg, res, _, _ = _run(base_config, make_resources, f"sel{seed}")
    state = final_state(cfg.run_dir)
    scores = []
    for test_seed in (seed, seed + 100):
        other = dataclasses.replace(res, test_loader=CountingTest(make_split(30, seed=test_seed)))
        scores.append(score_methods(other, cfg, state)[0])
    a, b = scores
    assert {"optimized", "proapo", "proapo_words", "searched_words"} <= set(a)
    assert any(a[m].test_accuracy != b[m].test_accuracy for m in a)
    for m in a:
        assert (a[m].feedback_accuracy, a[m].validation_accuracy, a[m].prompts_per_class) == (
            b[m].feedback_accuracy, b[m].validation_accuracy, b[m].prompts_per_class
        ), m  # fmt: skip


def test_the_agent_tries_its_descriptions_through_the_library_search(base_config, make_resources) -> None:
    chat = fruit_chat()
    res = dataclasses.replace(make_resources(chat, tools=True, validation=True), vocabulary=_vocab())
    cfg = base_config(
        "agent",
        search={"crossover": "library"},
        llm={"mutation_mode": "agent"},
        method={"max_iterations": 1, "patience": 2},
    )
    result = optimize(cfg, resources=res)
    assert result.status == "completed", result.error
    trials = [e for e in read_trace(cfg.run_dir, events={"tool_call"}) if e["tool"] == "score_descriptions"]
    assert trials and all(e["summary"].startswith("The search would keep") for e in trials if e["valid"])
