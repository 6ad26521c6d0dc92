# Helpers shared by the rules, one file per concern (rules/common/): the validated config and
# the settings derived from it, every output path, the version chain, the modelling and
# forecast settings, the report's labels, the stale-lock handling, and the runner of the
# rules' scripts (in their environments, or in Snakemake's own process).


include: "common/config.smk"
include: "common/paths.smk"
include: "common/chain.smk"
include: "common/modelling.smk"
include: "common/report.smk"
include: "common/locks.smk"
include: "common/rule_scripts.smk"
