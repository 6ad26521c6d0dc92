"""The documentation against the repository.

- The layout page names only paths that exist, and every directory of ``workflow/``.
- Every command of a shell block in the docs is one the test suite runs (``TESTED_COMMANDS``
  names the test), unless the block's first line is ``# needs: <what>``: something the suite
  does not have (a SLURM cluster of one's own, a shared server, the real data, GitHub).
- Links between the pages resolve: the file exists and so does the heading an anchor names.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The pages checked: the README, docs/, and the READMEs of config/ and resources/.
PAGES = sorted(
    [ROOT / "README.md", ROOT / "config/README.md", ROOT / "resources/README.md"]
    + list((ROOT / "docs").glob("*.md"))
)
#: Pages holding the repository's layout, in ```text blocks (one path per unindented line).
LAYOUT_PAGES = [ROOT / "docs/layout.md"]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
#: First line of a shell block that the test suite does not run, saying what it needs.
NEEDS = re.compile(r"^#\s*needs:\s*\S")

#: ``.ci/run`` installs requirements-dev.txt (which includes requirements.txt), then runs pytest.
CI = ".ci/run"

#: The modelling run of tests/test_models_workflow.py, deployed as a module in a user's directory.
MODULE_RUN = (
    "tests/test_models_workflow.py::"
    "test_deployed_as_a_module_everything_lands_in_the_users_directory"
)

#: Every command of an unmarked shell block, and the tests that run it. The suite runs the
#: workflow in a scratch directory, with the repository's Snakefile or a user's own that uses it
#: as a module, on small data and 2 cores (tests/conftest.py); S3 and HTTP sources against
#: local servers (tests/servers.py).
TESTED_COMMANDS: dict[str, tuple[str, ...]] = {
    # README: set up and run
    "pip install -r requirements.txt": (CI,),
    "pip install -r requirements-dev.txt": (CI,),
    "python -m pytest": (CI,),
    # the default target, in a checkout and in a user's directory using it as a module
    "snakemake --cores all": (
        "tests/test_config_values_end_to_end.py::"
        "test_comparison_has_every_model_and_the_baseline_with_finite_metrics",
        MODULE_RUN,
    ),
    "snakemake --cores all results/v11/v11.csv": (
        "tests/test_workflow.py::test_targeted_build_makes_only_what_it_needs",
        "tests/test_module.py::test_one_version_builds_in_the_users_directory",
    ),
    "snakemake --cores 2 verify": (
        "tests/test_verify.py::test_verify_passes_on_a_fresh_build",
        MODULE_RUN,
    ),
    "snakemake --report report.html": (
        "tests/test_models_workflow.py::"
        "test_report_holds_every_category_figure_table_and_data_version",
    ),
    # docs/models-and-tuning.md: the generator's oracle against a build's backtest
    "python scripts/oracle_skill.py --configfile config/config.yaml": (
        "tests/test_models_workflow.py::"
        "test_the_oracle_script_scores_the_backtest_as_the_workflow_does",
    ),
    # docs/deploying-as-a-module.md: the workflow profile beside the user's Snakefile
    "cp -r <checkout>/workflow/profiles workflow/": (
        "tests/test_module.py::test_one_version_builds_in_the_users_directory",
    ),
    # docs/real-data-and-s3.md (a local HTTP server and a local S3 server)
    "snakemake --cores all --config "
    """raw='{source: url, url: "https://example.org/inpatient.csv"}'""": (
        "tests/test_sources.py::test_url_source_retries_and_records_the_url",
    ),
    "export SNAKEMAKE_STORAGE_S3_ACCESS_KEY=... SNAKEMAKE_STORAGE_S3_SECRET_KEY=...": (
        "tests/test_sources.py::test_s3_source_and_results_in_s3",
    ),
    "snakemake --cores all --config "
    """raw='{source: s3, s3: "s3://my-bucket/raw/inpatient.csv"}'""": (
        "tests/test_sources.py::test_s3_source_and_results_in_s3",
    ),
    # (the test builds the targets results/v11/v11.csv and features with these flags)
    "snakemake --cores all --default-storage-provider s3 "
    "--default-storage-prefix s3://my-bucket/drg": (
        "tests/test_sources.py::test_s3_source_and_results_in_s3",
    ),
    # docs/cluster.md: the one-node SLURM of the cluster test, by hand
    "tests/cluster/slurm_up.sh": (
        "tests/test_slurm_cluster.py::test_default_target_runs_through_slurm",
    ),
    "mlflow server --app-name basic-auth --backend-store-uri sqlite:///$PWD/server.db "
    "--artifacts-destination $PWD/server-artifacts --host 127.0.0.1 --port 5000": (
        "tests/test_slurm_cluster.py::"
        "test_server_holds_every_trial_the_final_models_and_the_champion",
    ),
    "MLFLOW_TRACKING_URI=http://127.0.0.1:5000 snakemake --profile profiles/slurm": (
        "tests/test_slurm_cluster.py::test_default_target_runs_through_slurm",
    ),
    "kill %1": (
        "tests/test_slurm_cluster.py::"
        "test_server_holds_every_trial_the_final_models_and_the_champion",
    ),
    "tests/cluster/slurm_down.sh": (
        "tests/test_slurm_cluster.py::test_default_target_runs_through_slurm",
    ),
    # docs/layout.md: the small configurations of .test/ (on a copy of .test)
    "snakemake --cores 2 --directory .test --configfile .test/config-gap/config.yaml": (
        "tests/test_test_configs.py::"
        "test_config_gap_runs_end_to_end_and_forecasts_the_year_after_the_last",
    ),
    "snakemake --cores 2 --directory .test --configfile .test/config-file/config.yaml features": (
        "tests/test_test_configs.py::test_config_file_builds_and_proves_every_version",
    ),
    # docs/models-and-tuning.md: a bigger budget in a second config file
    "printf 'modelling: {tuning: {n_shards: 4, trials_per_shard: 50}}\\n' > bigger.yaml": (
        "tests/test_docs.py::test_a_second_config_file_sets_nested_numbers",
    ),
    "snakemake --cores all --configfile bigger.yaml": (
        "tests/test_docs.py::test_a_second_config_file_sets_nested_numbers",
    ),
}


# ------------------------------------------------------------------------------ markdown


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    lines: tuple[str, ...]

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a markdown page."""
    found, current = [], None
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        fence = FENCE.match(line)
        if current is None:
            if fence:
                current = (number, fence.group(2), fence.group(3).lower(), [])
        elif fence and fence.group(2).startswith(current[1]) and not fence.group(3):
            found.append(Block(page, current[0], current[2], tuple(current[3])))
            current = None
        else:
            current[3].append(line)
    assert current is None, f"{page.relative_to(ROOT)}:{current[0]}: unclosed code block"
    return found


def prose(page: Path, inline_code: bool = False) -> str:
    """The page without its code blocks, and without its inline code unless ``inline_code``
    (links are not links in code; a heading's inline code is part of its anchor)."""
    text, inside = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            text.append(line)
    joined = "\n".join(text)
    return joined if inline_code else re.sub(r"`[^`\n]*`", "", joined)


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings: lower case, punctuation dropped, spaces to -;
    a repeated heading gets -1, -2, ..."""
    anchors: set[str] = set()
    text = prose(page, inline_code=True)
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def commands(block: Block) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped, split at
    ``&&``, ``||``, ``;`` and a background ``&``, whitespace collapsed."""
    joined, pending = [], ""
    for line in block.lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    found = []
    for line in joined:
        for part in split_shell(line):
            part = " ".join(part.split())
            if part:
                found.append(part)
    return found


def split_shell(line: str) -> list[str]:
    """``line`` without its comment, cut at ``&&``, ``||``, ``;`` and ``&`` outside quotes."""
    parts, current, quote, i = [], "", None, 0
    while i < len(line):
        char = line[i]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (not current or current[-1].isspace()):
            break
        elif line.startswith(("&&", "||"), i):
            parts.append(current)
            current, i = "", i + 2
            continue
        elif char in ";&":
            parts.append(current)
            current, i = "", i + 1
            continue
        current += char
        i += 1
    parts.append(current)
    return parts


def shell_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.language in SHELL_LANGUAGES]


def needs_something_else(block: Block) -> bool:
    return bool(block.lines) and bool(NEEDS.match(block.lines[0].strip()))


# ------------------------------------------------------------------------------ (a) layout


def layout_entries(page: Path) -> list[tuple[int, str]]:
    """(line, path) of every unindented line of the page's ```text blocks."""
    entries = []
    for block in blocks(page):
        if block.language != "text":
            continue
        for offset, line in enumerate(block.lines, start=1):
            if line.strip() and not line[0].isspace():
                entries.append((block.line + offset, line.split()[0]))
    return entries


def expand_braces(path: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [
        expanded
        for choice in match.group(1).split(",")
        for expanded in expand_braces(path[: match.start()] + choice + path[match.end() :])
    ]


def workflow_directories() -> list[str]:
    found = []
    for folder, subfolders, _ in os.walk(ROOT / "workflow"):
        subfolders[:] = [d for d in subfolders if d != "__pycache__" and not d.startswith(".")]
        found += [str((Path(folder) / d).relative_to(ROOT)) for d in subfolders]
    return sorted(found)


@pytest.mark.parametrize("page", LAYOUT_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_layout_names_what_exists_and_every_workflow_directory(page: Path):
    entries = layout_entries(page)
    assert entries, f"{page.relative_to(ROOT)} has no layout (a ```text block of paths)"
    missing = [
        f"{page.relative_to(ROOT)}:{line}: {path}"
        for line, path in entries
        if not all(glob.glob(str(ROOT / p)) for p in expand_braces(path))
    ]
    assert missing == [], "the layout names paths that do not exist"
    named = {
        re.split(r"[*?\[]", p, maxsplit=1)[0].rstrip("/")
        for _, path in entries
        for p in expand_braces(path)
    }
    unnamed = [
        d for d in workflow_directories() if not any(n == d or n.startswith(d + "/") for n in named)
    ]
    assert unnamed == [], f"{page.relative_to(ROOT)} does not name these directories"


# ------------------------------------------------------------------------------ (b) commands


def test_every_documented_command_is_run_by_a_test_or_says_what_it_needs():
    untested = [
        f"{block.where()}: {command}"
        for block in shell_blocks()
        if not needs_something_else(block)
        for command in commands(block)
        if command not in TESTED_COMMANDS
    ]
    assert untested == [], (
        "commands in shell blocks that no test runs: add the test to TESTED_COMMANDS, or start "
        "the block with '# needs: <what the test suite does not have>'"
    )


def test_every_listed_command_is_documented():
    documented = {
        command
        for block in shell_blocks()
        if not needs_something_else(block)
        for command in commands(block)
    }
    assert sorted(set(TESTED_COMMANDS) - documented) == []


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
    return names


def test_every_listed_test_exists():
    missing = []
    for command, tests in TESTED_COMMANDS.items():
        assert tests, command
        for test in tests:
            if test == CI:
                continue
            file, _, name = test.partition("::")
            path = ROOT / file
            if not path.is_file() or name not in defined_tests(path):
                missing.append(f"{command}: {test}")
    assert missing == []


def test_ci_runs_the_set_up_commands():
    """What TESTED_COMMANDS credits to CI: it installs requirements-dev.txt, which includes
    requirements.txt, and runs exactly the README's test command."""
    ci = (ROOT / CI).read_text().splitlines()
    assert any(re.search(r"pip install .*-r requirements-dev\.txt$", line) for line in ci)
    assert "python -m pytest" in [line.strip() for line in ci]
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in [line.strip() for line in dev]
    assert {c for c, tests in TESTED_COMMANDS.items() if CI in tests} == {
        "pip install -r requirements.txt",
        "pip install -r requirements-dev.txt",
        "python -m pytest",
    }


def test_a_second_config_file_sets_nested_numbers(tmp_path: Path):
    """docs/models-and-tuning.md: a bigger budget in a --configfile is read as numbers (4 shards
    x 3 models in the plan); the same values in --config are strings, which the schema refuses.
    The block's printf is run as written."""
    (block,) = [
        b
        for b in blocks(ROOT / "docs/models-and-tuning.md")
        if b.language == "bash" and any("bigger.yaml" in line for line in b.lines)
    ]
    printf, snakemake = commands(block)
    subprocess.run(["bash", "-c", printf], cwd=tmp_path, check=True)
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config/config.yaml", tmp_path / "config/config.yaml")
    assert snakemake.startswith("snakemake --cores all ") and snakemake.endswith(
        "--configfile bigger.yaml"
    )
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow/Snakefile")]
    base += ["--directory", str(tmp_path), "--cores", "2", "-n"]
    plan = subprocess.run(
        [*base, "--configfile", str(tmp_path / "bigger.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    # 3 models x 4 shards x 2 rounds (the default).
    assert re.search(r"^tune_shard\s+24$", plan.stdout, re.M), plan.stdout[-3000:]
    refused = subprocess.run(
        [*base, "--config", "modelling={tuning: {n_shards: 4, trials_per_shard: 50}}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0
    message = "config key modelling.tuning.n_shards: '4' is not of type 'integer'"
    assert message in refused.stdout + refused.stderr


# ------------------------------------------------------------------------------ (c) links

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_the_pages_resolve(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], f"{page.relative_to(ROOT)} has broken links"


def test_the_link_check_sees_links_and_anchors():
    """The checks above cannot pass by finding nothing: the README links to docs/, and its
    own anchors are computed the way GitHub does."""
    readme = ROOT / "README.md"
    assert "docs/layout.md" in links(readme)
    assert {"set-up-and-run", "data-versions", "outputs"} <= heading_anchors(readme)
    assert "data-contracts-and-snakemake-verify" in heading_anchors(
        ROOT / "docs/contracts-and-verify.md"
    )
    assert len(shell_blocks()) >= 10


def test_the_readme_is_short_with_the_set_up_commands_near_the_top():
    """The README is an entry point (at most 120 lines): the two set-up commands and the
    command table come before any other section; the details live in docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 120
    second_section = next(
        i for i, line in enumerate(lines) if line.startswith("## ") and "Set up" not in line
    )
    top = "\n".join(lines[:second_section])
    assert "pip install -r requirements.txt && snakemake --cores all" in top
    assert "pip install -r requirements-dev.txt && python -m pytest" in top
    assert "| command | what it does |" in top
