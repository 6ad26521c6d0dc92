# The version chain (config `chain`): which versions exist, what each is made from, and the
# input functions of the rules that make them (raw.smk, transform.smk).
from drg_workflow.chain import arrow_copy_versions, configured_parameters
from drg_workflow.contract_settings import configured_contract
from drg_workflow.names import RAW_TRANSFORMATION, RAW_VERSION

#: version -> its chain entry ({version, transformation, input}).
CHAIN = {step["version"]: step for step in config["chain"]}
#: Every version the workflow can build, v0 first.
VERSIONS = [RAW_VERSION, *CHAIN]
#: Transformations used by the chain, in first-use order: one rule each.
CHAIN_TRANSFORMATIONS = list(
    dict.fromkeys(step["transformation"] for step in CHAIN.values())
)
#: The SLURM group job that runs the whole sequential chain v0 -> last version (profiles/slurm):
#: one queue wait instead of one per version. Locally, groups change nothing.
CHAIN_GROUP = "chain"
#: Threads of a chain step: writing a version's CSV is most of its time, and its text is
#: formatted in this many threads (same bytes; drg_workflow.tables.write_csv). The chain is
#: sequential, so the second core would otherwise idle. A runtime setting (--set-threads).
CHAIN_THREADS = 2
#: Versions with an Arrow copy: those read by more than the next step of the chain (the
#: modelling data, the forecast's base and names versions). The others have none: the next
#: step takes the table from memory (same process) or parses the CSV.
ARROW_COPIES = arrow_copy_versions(config)


wildcard_constraints:
    version="|".join(VERSIONS),


def transformation_of(version):
    """The transformation (and rule) that makes a version."""
    return CHAIN[version]["transformation"] if version in CHAIN else RAW_TRANSFORMATION


def versions_made_by(transformation):
    """Regex matching the versions a transformation makes (used as its rule's constraint)."""
    return "|".join(
        v for v, step in CHAIN.items() if step["transformation"] == transformation
    )


def transformation_keeps_arrow(transformation):
    """Whether the rule of a transformation writes Arrow copies. It does when a version it
    makes has one (then for every version it makes, since a rule has one set of outputs).
    """
    if transformation == RAW_TRANSFORMATION:
        return RAW_VERSION in ARROW_COPIES
    return any(
        step["version"] in ARROW_COPIES
        for step in CHAIN.values()
        if step["transformation"] == transformation
    )


def keeps_arrow_copy(version):
    """Whether a version has an Arrow copy."""
    return transformation_keeps_arrow(transformation_of(version))


def version_outputs(transformation, version="{version}"):
    """The outputs of the rule of a transformation (no Arrow copy unless its versions have
    one), for the versions it makes (a wildcard) or the one ``version``."""
    files = version_files(version)
    if not transformation_keeps_arrow(transformation):
        del files["arrow"]
    return files


def kept_version_files(version):
    """A version's files: CSV, metadata and, if it has one, its Arrow copy."""
    files = version_files(version)
    if not keeps_arrow_copy(version):
        del files["arrow"]
    return files


def input_version_files(wildcards):
    """The data and metadata of the version the requested one is made from: its Arrow copy if
    it has one, else its CSV (drg_workflow.handoff.read_version_data)."""
    release_stale_locks()
    source = kept_version_files(CHAIN[wildcards.version]["input"])
    return {"data": source.get("arrow", source["csv"]), "metadata": source["metadata"]}


def transformation_parameters(transformation):
    """Keyword parameters of a transformation, from the config."""
    return configured_parameters(config, transformation)


def transformation_contract(transformation):
    """The data contract the version a transformation makes must meet (config `contracts`)."""
    return configured_contract(config, transformation)


def raw_input_files(wildcards):
    """The raw CSV that v0 is read from (nothing for the synthetic generator).

    file: a local path, kept local even with --default-storage-provider; url: the CSV that
    download_raw fetched; s3: the object itself, through snakemake-storage-plugin-s3 (endpoint
    and credentials from its --storage-s3-* flags or SNAKEMAKE_STORAGE_S3_* variables).
    """
    release_stale_locks()
    raw = config["raw"]
    if raw["source"] == "file":
        return {"raw": local(raw["path"])}
    if raw["source"] == "url":
        return {"raw": RAW_DOWNLOAD}
    if raw["source"] == "s3":
        return {"raw": storage.s3(raw["s3"])}
    return {}


def raw_parameters():
    """Settings of the configured raw source, as recorded in the v0 metadata."""
    raw = config["raw"]
    if raw["source"] == "synthetic":
        return {"source": "synthetic", **raw["synthetic"]}
    # The URL / URI is recorded (the schema refuses credentials in it); a new one reruns v0.
    where = (
        {raw["source"]: raw[raw["source"]]} if raw["source"] in ("url", "s3") else {}
    )
    return {
        "source": raw["source"],
        **where,
        "on_bad_rows": raw["on_bad_rows"],
        "plausible_years": raw["plausible_years"],
    }


def version_targets():
    """Every version's CSV and metadata."""
    return [
        version_files(version)[kind]
        for version in VERSIONS
        for kind in ("csv", "metadata")
    ]


def verify_chain_files():
    """Every version of the chain and its files, in build order (the verify script's params);
    arrow is None for a version without an Arrow copy (verify has none to check).
    """
    return [
        {
            "version": version,
            "transformation": transformation_of(version),
            "input_version": CHAIN[version]["input"] if version in CHAIN else None,
            "arrow": None,
            **kept_version_files(version),
        }
        for version in VERSIONS
    ]


def verify_storage_inputs(wildcards):
    """Rule verify's input: nothing when results are local files (it checks them as they are
    on disk); with a default storage provider, every version's files as they are in the
    storage (named `<version>_<kind>` like verify_build's), flagged before_update so that no
    job is looked for, nor run, to make them."""
    if workflow.storage_settings.default_storage_provider is None:
        return {}
    return {
        f"{version}_{kind}": before_update(path)
        for version in VERSIONS
        for kind, path in kept_version_files(version).items()
    }


def verified_build_inputs(wildcards):
    """What the default target's check runs after: every version's files (named
    `<version>_csv`, `_arrow`, `_metadata`, so the script reads them where the job has them,
    e.g. local copies of a default storage) and the comparison."""
    release_stale_locks()
    files = {
        f"{version}_{kind}": path
        for version in VERSIONS
        for kind, path in kept_version_files(version).items()
    }
    return {**files, "comparison": COMPARISON}
