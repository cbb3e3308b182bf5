"""State models: objective ordering, reducers, and a checkpoint round trip through the serializer."""

from __future__ import annotations

from visfeed.agents.run import checkpoint_serde
from visfeed.state.models import (
    BankEntry,
    GraphState,
    IterationRecord,
    LineageEntry,
    MemoryBank,
    Objective,
    append_all,
    last_write,
    merge_keys,
    upsert_lineage,
)


def test_objective_order_is_correct_count_then_margin():
    a = Objective(n_correct=10, mean_margin=0.01, n_images=20)
    assert a.better_than(None)
    assert Objective(n_correct=11, mean_margin=-1.0, n_images=20).better_than(a)
    assert Objective(n_correct=10, mean_margin=0.02, n_images=20).better_than(a)
    assert not a.better_than(a)
    assert a.accuracy == 0.5


def test_state_round_trips_through_the_checkpoint_serializer():
    obj = Objective(n_correct=3, mean_margin=0.1, n_images=4)
    state = GraphState(
        iteration=2,
        descriptions={"apple": ["a red skin"]},
        best_objective=obj,
        banks={
            "apple": MemoryBank(
                positive=[BankEntry(text="t", action="added", iteration=1, delta_correct=1, delta_margin=0.0)]
            )
        },
        history=[IterationRecord(iteration=0, feedback=obj, n_descriptions=1, llm_calls=0, improved=True)],
    )
    serde = checkpoint_serde()
    kind, blob = serde.dumps_typed(state.model_dump())
    assert len(blob) < 10_000
    back = GraphState.model_validate(serde.loads_typed((kind, blob)))
    assert back == state


def test_delta_reducers_give_the_same_value_whether_writes_come_one_by_one_or_in_one_batch():
    """LangGraph replays a DeltaChannel's stored writes in batches of any size: the reducers must not care."""
    e1 = LineageEntry(class_name="apple", text="red", introduced_iteration=0, origin="init")
    e2 = LineageEntry(class_name="apple", text="round", introduced_iteration=1, origin="mutate:k=0")
    e1_closed = e1.model_copy(update={"deleted_iteration": 2, "deleted_reason": "crossover"})
    again = LineageEntry(class_name="apple", text="red", introduced_iteration=3, origin="agent")
    cases = [
        (append_all, [], [[1], [2, 3], []]),
        (merge_keys, {}, [{"a": 1}, {"b": 2}, {"a": 3}]),
        (last_write, {}, [{"a": 1}, {"b": 2}]),
        (upsert_lineage, [], [[e1], [e2, e1_closed], [again]]),
    ]
    for reducer, start, writes in cases:
        one_by_one = start
        for w in writes:
            one_by_one = reducer(one_by_one, [w])
        assert reducer(start, writes) == one_by_one, reducer
    assert append_all([0], [[1], [2, 3]]) == [0, 1, 2, 3]
    assert merge_keys({"a": 0, "c": 5}, [{"a": 1}, {"a": 3}]) == {"a": 3, "c": 5}
    assert upsert_lineage([], [[e1], [e2, e1_closed], [again]]) == [e1_closed, e2, again]
