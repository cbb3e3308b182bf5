from pathlib import Path

import numpy as np
from tests.support.browser import render

from visfeed.evals.report import LineageRow, ReportData, write_report


def sample_data() -> ReportData:
    rng = np.random.default_rng(0)
    names = ["lemon", "lime", "cherry", "tomato <b>"]
    conf_a = rng.integers(0, 10, size=(4, 4)).tolist()
    conf_b = (np.eye(4, dtype=int) * 12).tolist()
    return ReportData(
        title="run test",
        classnames=names,
        objective=[50.0, 62.5, 70.0],
        validation=[48.0, 60.0, 66.0],
        per_class_before=[40.0, 50.0, 60.0, 70.0],
        per_class_after=[80.0, 75.0, 60.0, 90.0],
        confusion_before=conf_a,
        confusion_after=conf_b,
        baselines={"names": 20.0, "templates": 22.5, "optimized": 80.0},
        lineage=[
            LineageRow(
                classname="tomato <b>",
                text="a yellow oval fruit",
                added_iteration=1,
                origin="mutation 2",
                delta_correct=2,
            )
        ],
        summary={"backbone": "visfeed-market"},
    )


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    path = write_report(sample_data(), tmp_path / "report.html")
    text = path.read_text()
    assert text.count('class="plot"') == 3
    assert "tomato &lt;b&gt;" in text and "tomato <b>" not in text
    assert "http://" not in text and "https://" not in text  # no external requests


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = write_report(sample_data(), tmp_path / "report.html")
    img, dom = render(path, tmp_path)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1000
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # plots drawn, not a blank page
    assert 'data-plots-loaded="3"' in dom
