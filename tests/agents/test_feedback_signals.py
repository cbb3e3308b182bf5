"""The feedback-signal seam through the whole graph: a signal added by one module and one registry line
reaches the mutation prompt, the trace, the library and the HTML report without any node naming it."""

from __future__ import annotations

import pytest
from tests.agents.conftest import CLASSES, fruit_chat
from tests.support.toy_signal import ToyShade

from visfeed.agents.run import optimize
from visfeed.evals.inspect import report_data
from visfeed.evals.report import write_report
from visfeed.state.rundir import read_trace
from visfeed.tools.feedback.registry import SIGNALS


@pytest.fixture()
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SIGNALS, ToyShade.name, ToyShade)


def _mutate_prompts(run_dir) -> list[str]:
    return [
        "\n".join(str(m.get("content", "")) for m in e["messages"])
        for e in read_trace(run_dir, events={"llm_call"})
        if e["task"] == "mutate"
    ]


def _run(base_config, make_resources, name: str):
    cfg = base_config(
        name,
        search={"crossover": "library"},
        method={"max_iterations": 2, "patience": 5},
        llm={"answer_format": "json"},
    )
    result = optimize(cfg, resources=make_resources(fruit_chat()))
    assert result.status == "completed", result.error
    return cfg


@pytest.mark.usefixtures("toy_registered")
def test_a_registered_signal_reaches_prompt_trace_library_and_report(base_config, make_resources, tmp_path) -> None:
    cfg = _run(base_config, make_resources, "toy")
    said = read_trace(cfg.run_dir, events={ToyShade.name})
    # read once per iteration for every class to mutate (mutate_scope: all), traced with the reading's fields
    assert sorted((e["iteration"], e["class_name"]) for e in said) == sorted((it, c) for it in (1, 2) for c in CLASSES)
    assert all(e["shade"] == f"tint{CLASSES.index(e['class_name'])}x{e['iteration']}" for e in said)
    # its lines are in every mutation prompt, after the accuracy and descriptions, for the prompt's classes
    prompts = _mutate_prompts(cfg.run_dir)
    assert prompts and all("  Toy shade: tint" in p for p in prompts)
    assert any("  Toy shade: tint0x1." in p and '"apple"' in p for p in prompts)
    # its proposals are traced with its name as origin and join the library with the others
    origins = {e["origin"] for e in read_trace(cfg.run_dir, events={"proposal"})}
    assert ToyShade.name in origins and any(o.startswith("mutate") for o in origins)
    library = (cfg.run_dir / "library.json").read_text()
    assert '"source": "toy"' in library and "a toy item of class 0" in library
    assert f'"source": "{ToyShade.name}"' in library  # a proposal item
    # the real report path: report data from the run directory, then the HTML file
    (table,) = [t for t in report_data(cfg.run_dir).signals if t.name == ToyShade.name]
    assert table.title == "Toy shades" and len(table.rows) == 2 * len(CLASSES)
    html = write_report(report_data(cfg.run_dir), tmp_path / "report.html").read_text()
    assert '<h2 id="signal-toy_shade">Toy shades</h2>' in html and "<td>tint3x2</td>" in html


def test_an_unregistered_signal_is_nowhere(base_config, make_resources) -> None:
    assert ToyShade.name not in SIGNALS
    cfg = _run(base_config, make_resources, "plain")
    assert not any("Toy shade" in p for p in _mutate_prompts(cfg.run_dir))
    assert not read_trace(cfg.run_dir, events={ToyShade.name})
    assert '"source": "toy"' not in (cfg.run_dir / "library.json").read_text()
    assert not [t for t in report_data(cfg.run_dir).signals if t.name == ToyShade.name]
