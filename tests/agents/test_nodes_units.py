"""Units of the graph's parts: filter, crossover search (against brute force), memory banks, grouping."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from tests.agents.conftest import CLASSES, SyntheticEncoder, make_split

from visfeed.agents.nodes.common import chunks, group_by_confusion
from visfeed.agents.nodes.filtering import drop_reasons
from visfeed.agents.nodes.memory import update_banks
from visfeed.agents.schemas import ClassEntry, DescriptionBatch, NameMatcher, batch_to_map, names_other_class
from visfeed.agents.search import Evaluate, all_unions, beam, exhaustive, greedy, union
from visfeed.state.models import BankEntry, ClassChange, MemoryBank
from visfeed.tools.scoring.engine import CandidateScores
from visfeed.tools.scoring.session import ScoringSession

BASE = {
    "apple": ["a shiny look", "a red look"],
    "cherry": ["a red small look"],
    "lemon": ["a yellow look"],
    "lime": ["a green oval look"],
    "banana": ["a long look"],
    "grape": ["a purple look"],
}


@pytest.fixture()
def session() -> ScoringSession:
    split = make_split(4, seed=5)
    s = ScoringSession(SyntheticEncoder(), CLASSES, split.image_emb, split.labels, device="cpu")
    s.set_descriptions(BASE)
    return s


def _objective(session: ScoringSession, name: str, descs: list[str]) -> tuple[int, float]:
    saved = list(session.current[name])
    session.set_descriptions({name: descs})
    n, m = session.objective()
    session.set_descriptions({name: saved})
    return n, round(m, 5)


def test_filter_drops_descriptions_close_to_a_confused_class(session):
    texts = ["a red small look", "a round stem look", "looks like a cherry"]
    reasons = drop_reasons(session, "apple", texts, ["cherry"], threshold=0.9, names=NameMatcher(session.classnames))
    assert "too close" in reasons["a red small look"] and "cherry" in reasons["a red small look"]
    assert "names another class" in reasons["looks like a cherry"]
    assert "a round stem look" not in reasons
    # a threshold above 1 keeps everything similar; no confused classes: nothing to compare with
    assert (
        drop_reasons(session, "apple", texts[:2], ["cherry"], threshold=1.01, names=NameMatcher(session.classnames))
        == {}
    )
    assert drop_reasons(session, "apple", texts[:2], [], threshold=0.0, names=None) == {}


def test_exhaustive_crossover_matches_brute_force(session):
    sets = [BASE["lemon"], ["a sour oval look", "a shiny look"], ["a yellow sour look"], ["a long curved look"]]
    chosen, n = exhaustive(sets, lambda c: session.evaluate_sets("lemon", c))
    brute = {}
    for r in range(1, len(sets) + 1):
        for combo in itertools.combinations(range(len(sets)), r):
            u = union([sets[i] for i in combo])
            brute[tuple(u)] = _objective(session, "lemon", u)
    best = max(brute.values())
    assert _objective(session, "lemon", chosen) == best
    assert n == len(all_unions(sets)) == len({frozenset(k) for k in brute})


def _table(objectives: dict[str, tuple[int, float]]) -> Evaluate:
    """An evaluator with set objectives (sets named by their joined texts; unlisted sets score nothing)."""

    def evaluate(cands: list[list[str]]) -> CandidateScores:
        keys = [objectives.get("".join(sorted(c)), (0, 0.0)) for c in cands]
        return CandidateScores(
            n_correct=np.array([k[0] for k in keys]), mean_margin=np.array([k[1] for k in keys]), n_images=10
        )

    return evaluate


def test_crossover_breaks_ties_by_margin_then_keeps_the_current_set():
    sets = [["a"], ["b"], ["c"]]
    # b and c both beat the current a by one image; c by the larger margin
    chosen, n = exhaustive(sets, _table({"a": (5, 0.1), "b": (6, 0.2), "c": (6, 0.3), "abc": (4, 0.9)}))
    assert chosen == ["c"] and n == 7
    # an exact tie with the current set keeps the current set (index 0), though it comes from another union
    chosen, _ = exhaustive(sets, _table({"a": (5, 0.1), "bc": (5, 0.1)}))
    assert chosen == ["a"]


def test_greedy_step_takes_the_best_move():
    objectives = {"a": (1, 0.0), "ab": (2, 0.0), "ac": (3, 0.0), "ad": (2, 0.5), "acd": (3, 0.1)}
    chosen, n = greedy(["a"], ["b", "c", "d"], _table(objectives), steps=1, max_size=3)
    assert chosen == ["a", "c"] and n == 4  # the current set and three additions
    chosen, _ = greedy(["a"], ["b", "c", "d"], _table(objectives), steps=5, max_size=3)
    assert sorted(chosen) == ["a", "c", "d"]  # then the margin tie-break adds d; nothing beats that


def test_greedy_and_beam_never_lose_and_reach_brute_force_on_small_pools(session):
    start = ["a long look"]
    pool = ["a yellow look", "a sour look", "a curved look", "a red look"]
    ev = lambda c: session.evaluate_sets("banana", c)  # noqa: E731
    subsets = [list(s) for r in range(1, 6) for s in itertools.combinations([*start, *pool], r)]
    best = max(_objective(session, "banana", s) for s in subsets)
    g, _ = greedy(start, pool, ev, steps=10, max_size=5)
    b, _ = beam(start, pool, ev, steps=10, width=8, max_size=5)
    base = _objective(session, "banana", start)
    assert base < best  # the pool holds something better than the start
    assert _objective(session, "banana", g) == best
    assert _objective(session, "banana", b) == best


def test_memory_banks_fill_by_sign_and_are_capped():
    up = ClassChange(before=["a", "b"], after=["a", "c"], delta_correct=1, delta_margin=0.01)
    down = ClassChange(before=["x"], after=["x", "y"], delta_correct=0, delta_margin=-0.02)
    rej = [
        BankEntry(text=f"r{i}", action="proposed", iteration=1, delta_correct=-1, delta_margin=0.0) for i in range(4)
    ]
    flat = ClassChange(before=["p"], after=["p"], rejected=rej)
    banks = update_banks({}, {"apple": up, "lime": down, "grape": flat}, it=1, cap=3)
    assert [(e.text, e.action) for e in banks["apple"].positive] == [("c", "added"), ("b", "deleted")]
    assert banks["apple"].negative == []
    assert [e.text for e in banks["lime"].negative] == ["y"] and banks["lime"].positive == []
    assert [e.text for e in banks["grape"].negative] == ["r1", "r2", "r3"]  # the last 3 kept
    again = update_banks(banks, {"apple": up}, it=2, cap=3)
    assert len(again["apple"].positive) == 3 and again["apple"].positive[-1].iteration == 2
    assert len(banks["apple"].positive) == 2  # inputs untouched
    assert isinstance(again["apple"], MemoryBank) and set(again) == {"apple"}  # only the classes it changed
    assert update_banks(again, {"apple": ClassChange(before=["a"], after=["a"])}, it=3, cap=3) == {}


def _grouping_by_scan(lam_conf, targets, size):
    """The plain greedy grouping (every remaining class's links summed for every member): the reference."""
    w = lam_conf + lam_conf.T
    n_groups = -(-len(targets) // size)
    per = -(-len(targets) // n_groups)
    remaining = sorted(targets, key=lambda c: (-float(w[c, list(targets)].sum()), c))
    groups = []
    while remaining:
        group = [remaining.pop(0)]
        while len(group) < per and remaining:
            links = [float(w[r, group].sum()) for r in remaining]
            group.append(remaining.pop(int(np.argmax(links))))
        groups.append(sorted(group))
    return groups


@pytest.mark.parametrize("seed", range(6))
def test_grouping_equals_the_plain_greedy_scan_on_dense_and_sparse_tables(seed):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    conf = (rng.random((n, n)) < 0.05) * rng.integers(1, 4, size=(n, n)).astype(np.float32)
    np.fill_diagonal(conf, 0)
    targets = sorted(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False).tolist())
    size = int(rng.integers(1, 12))
    expected = _grouping_by_scan(conf, targets, size)
    assert group_by_confusion(conf, targets, size) == expected
    assert group_by_confusion(sp.csr_array(conf), targets, size) == expected


def test_grouping_covers_targets_once_and_keeps_confused_classes_together():
    conf = np.zeros((6, 6))
    conf[0, 1] = conf[1, 0] = 5  # apple <-> cherry
    conf[2, 3] = conf[3, 2] = 4  # lemon <-> lime
    groups = group_by_confusion(conf, list(range(6)), 2)
    assert sorted(c for g in groups for c in g) == list(range(6))
    assert [0, 1] in groups and [2, 3] in groups
    assert max(len(g) for g in group_by_confusion(conf, list(range(6)), 4)) <= 4
    assert [len(c) for c in chunks(list(range(26)), 10)] == [9, 9, 8]


def test_answers_are_mapped_and_cleaned():
    batch = DescriptionBatch(
        classes=[
            ClassEntry(
                class_name="Apple", descriptions=["1. A red skin.", "a red skin", "", "x" * 300, "apple", "- a stem"]
            ),
            ClassEntry(class_name="durian", descriptions=["spikes"]),
        ]
    )
    out = batch_to_map(batch, ["apple", "lime"], limit=5, exclude={"apple": ["a stem"]})
    assert out == {"apple": ["A red skin"]}
    assert names_other_class("greener than a lime", "lemon", CLASSES) == "lime"
    assert names_other_class("a round red fruit", "apple", CLASSES) is None


def test_name_matcher_agrees_with_a_scan_of_every_name():
    """The n-gram lookup must give what the plain scan (every name, whole words, first in class order) gives."""
    names = ["apple", "green apple", "Pine Apple", "ice cream", "cream", "ice", "Dr. Pepper", "日本", "x_ray", ""]

    def scan(text: str, own: str) -> str | None:
        norm = lambda s: " ".join(re.sub(r"[\W_]+", " ", s.casefold()).split())  # noqa: E731
        t, own_n = f" {norm(text)} ", norm(own)
        return next((c for c in names if (n := norm(c)) and n != own_n and n not in own_n and f" {n} " in t), None)

    texts = ["a green apple's skin", "like ICE-cream", "pine apple rings", "dr pepper red", "日本 style", "x-ray of ice",
             "plain", "cream then ice cream", ""]  # fmt: skip
    matcher = NameMatcher(names)
    for own in [*names, "crabapple"]:
        for t in texts:
            assert matcher.other_class(t, own) == scan(t, own), (t, own)


def test_schema_fragments_and_example_copies_are_dropped():
    batch = DescriptionBatch(
        classes=[
            ClassEntry(class_name="lime", descriptions=["] {", "type: 'string'", "a bright red body", "a green rind"])
        ]
    )
    assert batch_to_map(batch, ["lime"], limit=5) == {"lime": ["a green rind"]}
