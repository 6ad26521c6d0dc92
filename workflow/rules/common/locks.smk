# Resuming after a killed run with the plain command (drg_workflow/run_lock.py): the run that
# holds the directory's locks records itself (onstart, in the Snakefile); a later run that will
# take the locks removes them when that holder is provably gone. Dry runs, --lint and --report
# change nothing.
from drg_workflow.run_lock import (
    record_lock_holder,
    remove_stale_locks,
    run_takes_locks,
)

#: The run holding this directory's Snakemake locks.
LOCK_HOLDER = Path(".snakemake") / "drg-workflow" / "lock-holder.json"

if workflow.is_main_process and run_takes_locks():
    killed_run = remove_stale_locks(Path(".snakemake") / "locks", LOCK_HOLDER)
    if killed_run is not None:
        logger.warning(
            f"Removed the locks left by a killed run (process {killed_run})."
        )
