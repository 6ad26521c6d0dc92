# How the rules run their scripts. Each names its script beside it (scripts/<name>.py); the
# fits and the forecast with script:, the others with run: blocks that call run_rule_script.
#
# With a software deployment method (--sdm conda, --sdm apptainer, --sdm env-modules),
# run_rule_script runs the script exactly as script: would, in a process of its own inside the
# rule's conda environment or container, so every rule runs in the environment it declares.
#
# Without one, the light rules (bookkeeping: a few MLflow or Optuna calls and a small table;
# the report's figures; the checks; the raw file's ingest and the chain's steps) run their
# script in a thread of Snakemake's own process instead. A process would cost each of them the
# start of Python, Snakemake's preamble, pandas and MLflow before its first line (their logs'
# profile lines show it), often more than its work; in Snakemake's process each library is
# imported once. The fits (tune_shard, train_final, backtest_model, refit_champion) and the
# forecast always keep their own processes: CPU-bound work runs in parallel only across
# processes, and a killed shard must not take Snakemake with it.
from contextlib import nullcontext
from types import SimpleNamespace

from snakemake.script import script as run_script_as_snakemake_does
from snakemake.sourcecache import LocalSourceFile


def software_deployment_requested():
    """Whether this run deploys software per rule (--sdm conda / apptainer / env-modules)."""
    return bool(workflow.deployment_settings.deployment_method)


def run_rule_script(script, job, one_at_a_time=True):
    """Run a rule's script (a path relative to the rule's file, as for script:), from a run:
    block that passes its ``locals()`` as ``job``.

    With a software deployment method, as script: does (its own process, the rule's conda
    environment or container). Without one, in this thread with the ``snakemake`` object the
    script reads; errors the user can fix end the job with the script's one-line message
    (drg_workflow.jobs.logged_rule). ``one_at_a_time``: hold drg_workflow.jobs.IN_PROCESS_LOCK
    for the whole script (two threads importing one package for the first time can break); the
    chain's steps take it only while they import, so the chain does not wait for the report.
    """
    if software_deployment_requested():
        run_script_as_snakemake_does(
            script,
            job["basedir"],
            job["input"],
            job["output"],
            job["params"],
            job["wildcards"],
            job["threads"],
            job["resources"],
            job["log"],
            config,
            job["rule"],
            job["conda_env"],
            job["conda_base_path"],
            job["container_img"],
            job["singularity_args"],
            job["env_modules"],
            job["bench_record"],
            job["jobid"],
            job["bench_iteration"],
            job["cleanup_scripts"],
            job["shadow_dir"],
            job["sourcecache_path"],
            job["runtime_sourcecache_path"],
            job["runtime_paths"],
        )
        return
    import runpy

    from drg_workflow.jobs import IN_PROCESS_LOCK, running_in_process

    snakemake_object = SimpleNamespace(rule=job["rule"], config=config)
    for name in (
        "input",
        "output",
        "params",
        "log",
        "wildcards",
        "threads",
        "resources",
    ):
        setattr(snakemake_object, name, job[name])
    path = local_script_path(job["basedir"], script)
    with IN_PROCESS_LOCK if one_at_a_time else nullcontext(), running_in_process():
        runpy.run_path(path, init_globals={"snakemake": snakemake_object})


def local_script_path(basedir, script):
    """A rule's script as a local file: in a local checkout the file itself; from a remote
    module (github(...)) the copy Snakemake keeps in its source cache."""
    source = basedir.join(script)
    if isinstance(source, LocalSourceFile):
        return source.get_path_or_uri(secret_free=True)
    return workflow.sourcecache.get_path(source)
