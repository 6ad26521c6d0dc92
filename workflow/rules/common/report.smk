# Labels of the report's items (report.smk): read from the inputs' metadata when the report is
# made, so every figure names the data version and sha256 it was drawn from.
import json

from drg_workflow.hashing import short_sha

#: Snakemake's report() flag under another name: snakefmt reads `report(` at the start of a line
#: as the Snakefile's `report:` directive and cannot parse the helper below.
report_output = report
#: Permutation importances drawn per model; lag features drawn against the target.
REPORT_TOP_FEATURES = 15
REPORT_LAG_FEATURES = 4


def per_model_figures(category, kind, name, figure):
    """One report figure per model, in MODELS order: results/report/<kind>/<model>_<name>.png
    in the report's `category`, a subcategory per model, captioned by report/<name>.rst.
    """
    return [
        report_output(
            REPORT_MODEL_FIGURE.format(kind=kind, model=model, name=name),
            # Resolved against the file that declares the rule (rules/report.smk).
            caption=f"../report/{name}.rst",
            category=category,
            subcategory=model,
            labels=report_labels(figure, model),
        )
        for model in MODELS
    ]


def report_labels(figure, model="all models"):
    """Labels of a report item: its figure name, its model and, read when the report is made,
    the data version and short sha256 it was made from (the rule's input.metadata).
    """

    def labels(wildcards, input):
        metadata = json.loads(Path(input.metadata).read_text())
        return {
            "model": model,
            "figure": figure,
            "data": f"{metadata['version']}, sha256 {short_sha(metadata['sha256'])}",
        }

    return labels


def version_report_labels(version):
    """Labels of a version's metadata in the report (version, transformation, rows, short
    sha256), read from the version's metadata when the report is made."""

    def labels(wildcards, input):
        (path,) = [f for f in input if f.endswith(f"{version}_metadata.json")]
        metadata = json.loads(Path(path).read_text())
        return {
            "version": version,
            "transformation": metadata["transformation"]["name"],
            "rows": metadata["rows"],
            "sha256": short_sha(metadata["sha256"]),
        }

    return labels
