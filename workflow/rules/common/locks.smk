# Resuming after a killed run with the plain command (drg_workflow/run_lock.py): the run that
# holds the directory's locks records itself (onstart, in the Snakefile); a later run removes
# the locks once that holder is provably gone.
#
# Snakemake takes the locks after it has built the jobs and before any onstart handler, so the
# removal runs while the jobs are built: the input functions of the chain's and the modelling's
# rules call release_stale_locks(), which acts once, in a run that takes the locks. Parsing,
# dry runs, --lint and --report change nothing.
from drg_workflow.run_lock import record_lock_holder, remove_stale_locks

#: The run holding this directory's Snakemake locks.
LOCK_HOLDER = Path(".snakemake") / "drg-workflow" / "lock-holder.json"
_STALE_LOCKS = {"checked": False}


def run_takes_locks():
    """Whether this Snakemake process is a run that locks the directory (known once the run
    builds its jobs: not a dry run, --touch, --nolock, a report or a job's own process).
    """
    return (
        workflow.is_main_process
        and workflow.executor_plugin is not None
        and not workflow.dryrun
        and not workflow.touch
        and workflow.execution_settings.lock
    )


def release_stale_locks():
    """Remove the locks a killed run left behind, once per run that takes the locks."""
    if _STALE_LOCKS["checked"] or not run_takes_locks():
        return
    _STALE_LOCKS["checked"] = True
    lock_dir = Path(".snakemake") / "locks"
    killed_run = remove_stale_locks(lock_dir, LOCK_HOLDER)
    if killed_run is not None:
        logger.warning(
            f"Removed the locks left by a killed run (process {killed_run})."
        )
    # Snakemake takes the locks right after this. Record this run as their holder now, not
    # only in onstart: a user's Snakefile that uses this workflow as a module does not run the
    # module's onstart. Only while no live run holds locks: Snakemake then stops this run
    # before it writes anything, and that run's record must stay.
    if not any(lock_dir.glob("*.lock")):
        record_lock_holder(LOCK_HOLDER)
