"""State models: objective ordering, reducers, and a checkpoint round trip through the serializer."""

from __future__ import annotations

from visfeed.agents.run import checkpoint_serde
from visfeed.state.models import (
    BankEntry,
    GraphState,
    IterationRecord,
    MemoryBank,
    Objective,
    extend,
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
    assert extend([1], [2]) == [1, 2]
