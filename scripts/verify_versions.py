"""Rule script of verify / verify_build: prove every version on disk against its metadata."""

from drg_workflow.documents import write_json
from drg_workflow.jobs import logged_rule
from drg_workflow.verify import VersionFiles, raise_if_broken, report_lines, verify_chain

with logged_rule(snakemake.log[0], snakemake.rule) as log:
    # verify_build reads its inputs where the job has them; verify (no input) the chain's paths.
    chain = [
        VersionFiles(
            **{
                **files,
                **{
                    kind: snakemake.input.get(f"{files['version']}_{kind}", files[kind])
                    for kind in ("csv", "arrow", "metadata")
                },
            }
        )
        for files in snakemake.params.chain
    ]
    report = verify_chain(chain)
    # verify_build declares the report as its output; verify (no output, so that it always
    # runs) writes it beside its log.
    write_json(report, snakemake.output[0] if snakemake.output else snakemake.log.report)
    for line in report_lines(report):
        print(line, flush=True)
        log.info(line)
    raise_if_broken(report)
