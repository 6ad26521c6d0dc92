"""Ablation of the series-history features (v14): each model's backtest skill with every
feature, and without each group of ``drg_workflow.columns.history_columns`` in turn.

Run it in a directory where the default target was built with v14 as the modelling data
(give that build's config with ``--configfile``; docs/data-versions.md says how to add v14). It
reads the modelling data's Arrow copy, ``results/models/split.json`` and each model's tuned
parameters from ``results/backtest/<model>/fits.json``. Every variant refits the model with
those parameters at every backtest origin, as ``backtest_model`` does, and prints the RMSE and
MAE skill against persistence per origin as a Markdown table (docs/models-and-tuning.md shows
it):

    python scripts/ablation.py --configfile with-v14.yaml     # in the build's directory
    python scripts/ablation.py --configfile with-v14.yaml --directory /tmp/build --models ridge

A group is left out on top of the model's own ``drop_feature_groups`` (a group it drops
already repeats its "every feature" row). The parameters were tuned with the model's features,
so a variant without a group is a lower bound of what tuning without it could reach; the
figures are for reading, not for a test.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from drg_workflow.columns import history_columns  # noqa: E402
from drg_workflow.config_validation import validate_config  # noqa: E402
from drg_workflow.documents import read_json  # noqa: E402
from drg_workflow.modelling.backtest import fit_at_origin, skill  # noqa: E402
from drg_workflow.modelling.data import select_features  # noqa: E402
from drg_workflow.modelling.metrics import mae, rmse  # noqa: E402
from drg_workflow.modelling.settings import ModelSettings, model_rule_settings  # noqa: E402
from drg_workflow.modelling.years import ModellingYears  # noqa: E402
from drg_workflow.tables import read_arrow  # noqa: E402


def configured(configfile: Path | None) -> dict:
    """The workflow's config, with ``configfile``'s keys over it, validated with defaults."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    if configfile is not None:
        config.update(yaml.safe_load(configfile.read_text()) or {})
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return validate_config(config, copy.deepcopy(schema))


def skills(predictions) -> tuple[float, float]:
    """RMSE and MAE skill of one origin's predictions against persistence, as the backtest
    scores them."""
    actual, predicted, persistence = (
        predictions[column].to_numpy() for column in ("actual", "prediction", "persistence")
    )
    return tuple(
        float(skill(metric(actual, predicted), metric(actual, persistence)))
        for metric in (rmse, mae)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", type=Path, default=Path("."))
    parser.add_argument("--configfile", type=Path)
    parser.add_argument("--models", nargs="*")
    args = parser.parse_args()
    config = configured(args.configfile)
    results = args.directory / "results"
    version = config["modelling"]["data_version"]
    frame = read_arrow(results / version / f"{version}.arrow")
    years = ModellingYears.from_json(read_json(results / "models" / "split.json"))
    groups = history_columns(config["target"])
    origins = " | ".join(f"{origin} ({years.role(origin)})" for origin in years.origins)
    print(f"| model | features | {origins} |")
    print("|---|---|" + "---|" * len(years.origins))
    for name in args.models or list(config["modelling"]["models"]):
        model = ModelSettings.from_params(
            model_rule_settings(config, name), years.split, years.cv_folds
        )
        params = read_json(results / "backtest" / name / "fits.json")["fits"][0]["params"]
        features = select_features(
            frame.columns,
            model.modelling.features,
            model.modelling.include_same_year_features,
            model.modelling.include_year,
        )
        for group in ["all", *groups]:
            # Each group left out on top of the model's own drop_feature_groups.
            extra = () if group == "all" or group in model.drop_feature_groups else (group,)
            variant = replace(model, drop_feature_groups=(*model.drop_feature_groups, *extra))
            used = [f for f in features if f not in set(variant.dropped_features)]
            cells = []
            for origin in years.origins:
                fit = fit_at_origin(variant, params, frame, features, origin, years.role(origin))
                rmse_skill, mae_skill = skills(fit.predictions)
                cells.append(f"{rmse_skill:+.3f} / {mae_skill:+.3f}")
            own = "its features" if model.drop_feature_groups else "every feature"
            label = own if group == "all" else f"without {group}"
            print(f"| {name} | {label} ({len(used)}) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
