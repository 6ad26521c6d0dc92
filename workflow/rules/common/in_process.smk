# The rules that do little work per job (bookkeeping: a few MLflow or Optuna calls and a small
# table; the report's figures; the checks; the raw file's ingest, which starts the chain) run
# their script in Snakemake's own process: the script is the same thin adapter, executed by a
# run: block in a thread instead of in a process of its own. A process would cost each of them
# the start of Python, Snakemake's preamble, pandas and MLflow before its first line (their
# logs' profile lines show it), often more than its work; in Snakemake's process each library
# is imported once. The fits (tune_shard, train_final, backtest_model, refit_champion) and the
# forecast keep their own processes: CPU-bound work runs in parallel only across processes, and
# a killed shard must not take Snakemake with it.
from types import SimpleNamespace

#: The rules run this way and their scripts (scripts/<script>.py); the scripts' paths: in a
#: local checkout the files themselves; from a remote module (github(...)) the copies Snakemake
#: fetched into its source cache for this run (source_path is relative to this file).
IN_PROCESS_RULES = {
    "ingest_raw": "ingest_raw",
    "split_years": "split_years",
    "setup_mlflow": "setup_mlflow",
    "setup_study": "setup_study",
    "evaluate_baseline": "evaluate_baseline",
    "score_backtest": "score_backtest",
    "compare_models": "compare_models",
    "register_champion": "register_champion",
    "model_card": "model_card",
    "report_data_versions": "report_data_versions",
    "report_features": "report_features",
    "report_tuning": "report_tuning",
    "report_models": "report_models",
    "report_backtest": "report_backtest",
    "report_forecast": "report_forecast",
    "verify": "verify_versions",
    "verify_build": "verify_versions",
}
IN_PROCESS_SCRIPTS = {
    rule_name: (
        str(LOCAL_SCRIPTS_DIR / f"{script}.py")
        if LOCAL_SCRIPTS_DIR is not None
        else workflow.source_path(f"../../../scripts/{script}.py")
    )
    for rule_name, script in IN_PROCESS_RULES.items()
}


def run_script_in_process(input, output, params, wildcards, threads, log, rule_name):
    """Run the script of rule ``rule_name`` (IN_PROCESS_RULES) in this process, with the
    ``snakemake`` object it reads. Errors the user can fix end the job with the script's
    one-line message (drg_workflow.jobs.logged_rule)."""
    import runpy

    from drg_workflow.jobs import in_process_script

    job = SimpleNamespace(rule=rule_name, config=config)
    job.input, job.output, job.params, job.log = input, output, params, log
    job.wildcards, job.threads = wildcards, threads
    # One script at a time: two threads importing one package for the first time can break
    # (drg_workflow.jobs.IN_PROCESS_LOCK).
    with in_process_script():
        runpy.run_path(IN_PROCESS_SCRIPTS[rule_name], init_globals={"snakemake": job})
