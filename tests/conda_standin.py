"""A stand-in for conda, for running the workflow with ``--sdm conda`` where no conda channel
can be reached (these machines, CI).

:func:`install` writes, into a directory, the few conda commands Snakemake calls (``conda
--version``, ``conda info --json``, ``conda config --get channel_priority --json``, ``conda env
create --file F --prefix P``, ``conda clean``) and the ``activate`` script Snakemake sources
before a job's command. An "environment" it creates holds one file, ``bin/python``: a wrapper
that records which environment ran which script (a line ``<environment prefix> <script>`` in
the record file) and runs this interpreter, which has every package of the rules'
environments. So a run under it shows which environment each job asked for, and that each job
ran its script in a process of its own inside that environment; it does not show that the
pinned packages install (tests/test_environments.py checks the pins and imports).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

#: The conda version the stand-in reports (Snakemake 9 asks for at least 24.7.1).
STANDIN_CONDA_VERSION = "25.11.0"

CONDA = """#!{python}
import json, os, sys
from pathlib import Path

BASE = {base!r}
PYTHON_WRAPPER = {wrapper!r}
args = sys.argv[1:]
if args == ["--version"]:
    print("conda {version}")
elif args[:2] == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": BASE, "platform": "linux-64", "envs": []}}))
elif args[:3] == ["config", "--get", "channel_priority"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}, "rc_path": None}}))
elif args[:2] == ["env", "create"]:
    values = dict(arg.split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)
    prefix = values.get("--prefix") or args[args.index("--prefix") + 1]
    env_file = values.get("--file") or args[args.index("--file") + 1]
    prefix = prefix.strip('"')
    binary = Path(prefix) / "bin"
    binary.mkdir(parents=True)
    (binary / "python").write_text(PYTHON_WRAPPER.format(prefix=prefix))
    (binary / "python").chmod(0o755)
    with open(os.path.join(BASE, "created.txt"), "a") as created:
        created.write(f"{{prefix}} {{env_file.strip(chr(34))}}\\n")
elif args[:1] == ["clean"]:
    pass  # no package cache to clean
else:
    sys.exit(f"conda stand-in: no such command in the stand-in: {{args}}")
"""

PYTHON_WRAPPER = """#!/bin/sh
case "$1" in
  *.py) printf '%s %s\\n' "{{prefix}}" "$1" >> "{record}" ;;
esac
exec "{python}" "$@"
"""

ACTIVATE = """# Sourced by Snakemake before a job's command: `source activate <environment prefix>`.
export CONDA_PREFIX="$1"
export PATH="$1/bin:$PATH"
"""


def install(base: Path, record: Path) -> Path:
    """Write the stand-in into ``base`` (``base/bin/conda``, ``base/bin/activate``); the
    scripts run in its environments are recorded in ``record``. Return the directory to put
    first on ``PATH``."""
    binary = base / "bin"
    binary.mkdir(parents=True, exist_ok=True)
    wrapper = PYTHON_WRAPPER.format(record=record, python=sys.executable)
    conda = binary / "conda"
    conda.write_text(
        CONDA.format(
            python=sys.executable,
            base=str(base),
            wrapper=wrapper,
            version=STANDIN_CONDA_VERSION,
        )
    )
    conda.chmod(conda.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (binary / "activate").write_text(ACTIVATE)
    return binary


def recorded_scripts(record: Path) -> list[tuple[Path, str]]:
    """(environment prefix, script file name) of every script run in a stand-in environment."""
    if not record.exists():
        return []
    runs = []
    for line in record.read_text().splitlines():
        prefix, script = line.split(" ", 1)
        runs.append((Path(prefix), os.path.basename(script)))
    return runs
