import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from tests.support.browser import render

from visfeed.evals.sweep_report import write_sweep_report
from visfeed.evals.sweep_summary import summarize_sweep, summary_csv
from visfeed.fileio import write_json_atomic
from visfeed.state.rundir import RESULT_FILE, MethodScore, RunResult
from visfeed.state.sweep import METHODS, expand, spec_from_mapping

ACC = {  # (dataset, seed) -> test accuracy of "optimized"; every baseline scores half of it
    ("lemons", 0): 0.80,
    ("lemons", 1): 0.90,
    ("limes <b>", 0): 0.50,
    ("limes <b>", 1): 0.70,
}


def write_results(tmp_path: Path, *, unfinished: str | None = None) -> list:
    spec = spec_from_mapping(
        {
            "name": "table",
            "datasets": [{"name": "lemons"}, {"name": "limes", "world_spec": "limes.yaml"}],
            "seeds": [0, 1],
        }
    )
    cells = expand(spec, tmp_path / "sweep", base=tmp_path)
    for cell in cells:
        key = ("lemons" if cell.dataset == "lemons" else "limes <b>", cell.seed)
        acc = ACC[key]
        status = "running" if cell.id == unfinished else "completed"
        result = RunResult(
            status=status,
            run_dir=str(cell.run_dir),
            optimized=MethodScore(feedback_accuracy=1.0, test_accuracy=acc, prompts_per_class=3),
            baselines={m: MethodScore(feedback_accuracy=0.5, test_accuracy=acc / 2, prompts_per_class=1)
                       for m in METHODS if m != "optimized"},
            llm={"calls": 10 + cell.seed, "prompt_tokens": 100, "completion_tokens": 20},
            timings={"wall_s": 5.0},
        )  # fmt: skip
        cell.run_dir.mkdir(parents=True)
        write_json_atomic(cell.run_dir / RESULT_FILE, result.model_dump(mode="json"))
    return cells


def test_mean_and_sample_std_over_seeds_per_column(tmp_path: Path) -> None:
    cells = write_results(tmp_path)
    summary = summarize_sweep("table", cells, list(METHODS))
    assert summary.columns == ["lemons × visfeed-market", "limes × visfeed-market"]
    opt = summary.accuracy["optimized"]["lemons × visfeed-market"]
    assert opt.n == 2 and opt.mean == pytest.approx(85.0)
    assert opt.std == pytest.approx(np.std([80.0, 90.0], ddof=1))
    assert summary.accuracy["names"]["limes × visfeed-market"].mean == pytest.approx(30.0)
    assert summary.cost["LLM calls"]["lemons × visfeed-market"].mean == pytest.approx(10.5)
    assert summary.cost["tokens"]["lemons × visfeed-market"].mean == pytest.approx(120.0)
    assert summary.complete
    rows = list(csv.DictReader(io.StringIO(summary_csv(summary))))
    line = next(r for r in rows if r["row"] == "optimized" and r["column"].startswith("limes"))
    assert float(line["mean"]) == pytest.approx(60.0) and line["n"] == "2"
    assert summary.rows()[-1][0] == "wall s"


def test_an_unfinished_cell_is_listed_but_left_out_of_the_means(tmp_path: Path) -> None:
    cells = write_results(tmp_path, unfinished="lemons__visfeed-market__local__s1")
    summary = summarize_sweep("table", cells, ["optimized"])
    opt = summary.accuracy["optimized"]["lemons × visfeed-market"]
    assert opt.n == 1 and opt.mean == pytest.approx(80.0) and opt.std is None
    assert opt.text() == "80.0"
    assert not summary.complete
    assert {c.status for c in summary.cells} == {"completed", "running"}


def test_summary_page_is_self_contained_and_renders_in_headless_chromium(tmp_path: Path) -> None:
    cells = write_results(tmp_path)
    summary = summarize_sweep("table <i>", cells, list(METHODS))
    page = write_sweep_report(summary, tmp_path / "summary.html")
    text = page.read_text()
    assert "table &lt;i&gt;" in text and "table <i>" not in text
    assert "http://" not in text and "https://" not in text
    assert "85.0 ± 7.1" in text  # the optimized lemons entry
    json.loads(summary.model_dump_json())  # summary.json round-trips
    img, dom = render(page, tmp_path, height=1400)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # the plot is drawn
    assert 'data-plots-loaded="1"' in dom
