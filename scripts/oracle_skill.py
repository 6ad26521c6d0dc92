"""How the generator's oracle forecast does on a build's backtest, next to the tuned models.

Run it in a directory where the default target was built from the bundled generator
(``raw.source: synthetic``), giving that build's config with ``--configfile``. It redraws the
generator's latent state from ``raw.synthetic``, forecasts every series the backtest scored at
every origin with :func:`drg_workflow.generator_oracle.oracle_forecast` (the expected target
given the latent effects of the year before: more than any model can know), and prints the
RMSE and MAE skill against persistence per origin for the oracle and for each model, from
``results/backtest/predictions.csv``, as a Markdown table (docs/models-and-tuning.md shows it),
with the share of persistence's squared error that its largest single series makes:

    python scripts/oracle_skill.py --configfile config/config.yaml      # in the build's directory
    python scripts/oracle_skill.py --configfile s101.yaml --directory /tmp/build --draws 1000

Its figures are for reading; the test suite runs it on a small build and checks the models'
cells against the backtest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from ablation import configured, skills

from drg_workflow.generator_oracle import oracle_forecast, series_indices
from drg_workflow.synthetic import draw_generator_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", type=Path, default=Path("."))
    parser.add_argument("--configfile", type=Path)
    parser.add_argument("--draws", type=int, default=400, help="simulations per series")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulations")
    args = parser.parse_args()
    config = configured(args.configfile)
    if config["raw"]["source"] != "synthetic":
        parser.error(f"raw.source is {config['raw']['source']!r}: the oracle needs 'synthetic'")
    synthetic = config["raw"]["synthetic"]
    state = draw_generator_state(
        seed=synthetic["seed"],
        scale=synthetic["scale"],
        n_years=synthetic["last_year"] - synthetic["first_year"] + 1,
    )
    predictions = pd.read_csv(args.directory / "results" / "backtest" / "predictions.csv")
    models = list(dict.fromkeys(predictions["model"]))
    print(f"| origin | largest series | oracle | {' | '.join(models)} |")
    print("|---|---|---|" + "---|" * len(models))
    for origin, at_origin in predictions.groupby("origin", sort=True):
        rows = at_origin[at_origin["model"] == models[0]]
        facility, drg = series_indices(state, rows["facility_id"], rows["apr_drg_code"])
        oracle = rows.assign(
            prediction=oracle_forecast(
                state,
                int(origin) - synthetic["first_year"],
                facility,
                drg,
                n_draws=args.draws,
                seed=args.seed,
            )
        )
        squared = (rows["actual"] - rows["persistence"]).to_numpy() ** 2
        cells = [f"{squared.max() / squared.sum():.0%}"]
        for frame in [oracle, *(at_origin[at_origin["model"] == m] for m in models)]:
            rmse_skill, mae_skill = skills(frame)
            cells.append(f"{rmse_skill:+.3f} / {mae_skill:+.3f}")
        print(f"| {origin} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
