"""One class's crossover step against a real scoring session on the synthetic fruit world."""

from __future__ import annotations

import itertools

import pytest
from tests.agents.conftest import CLASSES, SyntheticEncoder, make_split

from visfeed.agents.class_crossover import crossover_class
from visfeed.agents.search import union
from visfeed.state.config import RunConfig
from visfeed.state.models import Candidate
from visfeed.tools.scoring.session import ScoringSession

# lemon and lime start with the same description, so they confuse each other
START = {
    "apple": ["a red round look"],
    "cherry": ["a red small look"],
    "lemon": ["a sour look"],
    "lime": ["a sour look"],
    "banana": ["a long curved look"],
    "grape": ["a purple cluster look"],
}
HELPS = Candidate(origin="mutate:k=0", descriptions=["a yellow oval look"])
HURTS = Candidate(origin="mutate:k=1", descriptions=["a green look"])
MODES = ["exhaustive", "greedy", "beam", "llm", "auto"]


SPLIT = make_split(4, seed=5)


def _session(descriptions: dict[str, list[str]]) -> ScoringSession:
    s = ScoringSession(SyntheticEncoder(), CLASSES, SPLIT.image_emb, SPLIT.labels, device="cpu")
    s.set_descriptions(descriptions)
    return s


@pytest.fixture()
def session() -> ScoringSession:
    return _session(START)


def _objective(session: ScoringSession, name: str, descs: list[str]) -> tuple[int, float]:
    """The objective with one class's set replaced, from a fresh session (independent of the one searched)."""
    return _session({**session.current, name: descs}).objective()


def _best_union(session: ScoringSession, name: str, sets: list[list[str]]) -> tuple[int, float]:
    unions = [union(c) for r in range(1, len(sets) + 1) for c in itertools.combinations(sets, r)]
    return max(_objective(session, name, u) for u in unions)


@pytest.mark.parametrize("mode", MODES)
def test_a_helpful_proposal_is_taken_and_a_harmful_addition_is_rejected(session, mode):
    current = START["lemon"]
    base = session.objective()
    assert _objective(session, "lemon", union([current, HELPS.descriptions])) > base
    assert _objective(session, "lemon", union([current, HURTS.descriptions])) < base
    change, n_evaluated = crossover_class(
        session, "lemon", [HELPS, HURTS], [], RunConfig(search={"crossover": mode}), 3
    )
    assert change.before == current and session.current["lemon"] == change.after
    assert "a yellow oval look" in change.after and "a green look" not in change.after
    assert change.origins["a yellow oval look"] == "mutate:k=0"
    n, m = session.objective()
    assert (n, m) > base
    assert change.delta_correct == n - base[0] and change.delta_margin == pytest.approx(m - base[1])
    assert [(e.text, e.iteration, e.action) for e in change.rejected] == [("a green look", 3, "proposed")]
    assert change.rejected[0].delta_correct <= 0
    assert n_evaluated >= 3  # the search's sets, each proposal as an addition and the current set
    if mode in ("exhaustive", "auto"):
        assert (n, m) == _best_union(session, "lemon", [current, HELPS.descriptions, HURTS.descriptions])


@pytest.mark.parametrize("mode", MODES)
def test_the_current_set_stays_when_nothing_beats_it(session, mode):
    current = START["banana"]
    base = session.objective()
    recombined = [Candidate(origin="llm-crossover", descriptions=["a long curved look", "a green look"])]
    assert _best_union(session, "banana", [current, HURTS.descriptions]) == base
    change, _ = crossover_class(session, "banana", [HURTS], recombined, RunConfig(search={"crossover": mode}), 1)
    assert change.before == change.after == current == session.current["banana"]
    assert session.objective() == base
    assert (change.delta_correct, change.delta_margin, change.origins) == (0, 0.0, {})
    assert [e.text for e in change.rejected] == ["a green look"]
