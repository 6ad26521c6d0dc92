"""The rules of the workflow as Snakemake parses them: name, file, conda environment, script and
whether each runs anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Run in a subprocess (Snakemake changes the working directory). A script: rule's script is
#: Snakemake's; a run: rule names its script in its call of run_rule_script
#: (rules/common/rule_scripts.smk), the one string constant of its body ending in .py.
DUMP_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ResourceSettings

def run_block_script(rule):
    if rule.norun or rule.run_func is None:
        return None
    constants = rule.run_func.__code__.co_consts
    scripts = [c for c in constants if isinstance(c, str) and c.endswith(".py")]
    return scripts[0] if len(scripts) == 1 else None

with SnakemakeApi() as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(), snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[2])
    )._workflow
    print(json.dumps([
        {"name": rule.name, "snakefile": rule.snakefile, "conda": rule.conda_env,
         "script": rule.script or run_block_script(rule), "runs": not rule.norun}
        for rule in workflow.rules
    ]))
"""


def workflow_rules(snakefile: Path, workdir: Path) -> list[dict]:
    """Every rule of ``snakefile`` with the config in ``workdir`` (config/config.yaml): dicts
    with name, snakefile, conda (relative to the rule's file), script (likewise) and runs."""
    result = subprocess.run(
        [sys.executable, "-c", DUMP_RULES, str(snakefile), str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def rule_file(rule: dict, key: str) -> Path:
    """The absolute path of a rule's ``conda`` or ``script`` file."""
    return (Path(rule["snakefile"]).parent / rule[key]).resolve()
