"""Adding a report figure touches its function, one rule's outputs, that rule's script and a
caption (docs/adding-a-report-figure.md): in a copy of the workflow, the guide's figure builds,
the lint passes, and it lands in the report with its caption."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from conftest import ROOT, SMALL_CONFIG, copy_of_the_workflow, snakemake_in_copy, write_config

pytestmark = pytest.mark.workflow

GUIDE = (ROOT / "docs/adding-a-report-figure.md").read_text()
#: The guide's function and the rule's new output.
# (the rule's lines are a snakemake block: a formatter of Python blocks would rewrite them)
(FUNCTION,) = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
(OUTPUT,) = re.findall(r"```snakemake\n(.*?)```", GUIDE, re.S)
SCRIPT_LINE = "    save_png(rows_by_year(frame, data), snakemake.output.rows)\n"
CAPTION = "Rows of data version {{ snakemake.config.modelling.data_version }} per year.\n"


@pytest.fixture(scope="module")
def extended(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the workflow with the guide's three edits and a caption, and a working
    directory with the small config."""
    base = tmp_path_factory.mktemp("new-figure")
    checkout = copy_of_the_workflow(base / "checkout")
    figures = checkout / "scripts/drg_workflow/report/figures.py"
    figures.write_text(figures.read_text() + "\n\n" + FUNCTION)
    rules = checkout / "workflow/rules/report.smk"
    anchor = "rule report_features:\n    input:\n        unpack(modelling_data),\n    output:\n"
    assert anchor in rules.read_text()
    rules.write_text(rules.read_text().replace(anchor, anchor + OUTPUT))
    script = checkout / "scripts/report_features.py"
    text = script.read_text().replace(
        "from drg_workflow.report.output import save_png\n",
        "from drg_workflow.report.figures import rows_by_year\n"
        "from drg_workflow.report.output import save_png\n",
    )
    script.write_text(text.rstrip() + "\n" + SCRIPT_LINE)
    (checkout / "workflow/report/rows_by_year.rst").write_text(CAPTION)
    workdir = base / "work"
    write_config(workdir, SMALL_CONFIG)
    return checkout, workdir


def test_the_new_figure_builds_passes_the_lint_and_lands_in_the_report(extended):
    checkout, workdir = extended
    figure = workdir / "results/report/features/rows_by_year.png"
    result = snakemake_in_copy(checkout, workdir, str(figure.relative_to(workdir)))
    assert result.returncode == 0, result.stderr[-3000:]
    header = figure.read_bytes()[:24]
    width, height = struct.unpack(">II", header[16:24])  # the PNG's IHDR
    assert header.startswith(b"\x89PNG") and width > 400 and height > 300
    lint = snakemake_in_copy(checkout, workdir, "--lint")
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr
    # The report of that target holds the figure under its category, with its caption.
    page = workdir / "report.html"
    report = snakemake_in_copy(
        checkout, workdir, "--report", str(page), str(figure.relative_to(workdir))
    )
    assert report.returncode == 0, report.stderr[-3000:]
    html = page.read_text()
    assert "rows_by_year.png" in html and "per year." in html
