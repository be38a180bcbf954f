"""The seed's second Dask program: XGBoost trained through xgboost.dask on
random dask.array data, then its feature-importance plot saved.

    drover run --kind dask --python "$VENV/bin/python" --workers 2 --cores 2 --interface ib0 \
        -- "$VENV/bin/python" -u slurm/examples/dask/xgboost_train.py --rows 20000 --out importance.png
"""

import argparse

import dask.array as da
import matplotlib

matplotlib.use("Agg")
import xgboost as xgb  # noqa: E402
import xgboost.dask  # noqa: E402,F401  (the Dask interface is a submodule)
from dask.distributed import Client  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default="feature-importance.png")
    args = parser.parse_args()

    client = Client()
    rs = da.random.RandomState(42)
    X = rs.random_sample((args.rows, args.columns), chunks=(args.chunk, args.columns))
    # The target depends on the first columns, so the plot has a clear order.
    y = 4 * X[:, 0] + 2 * X[:, 1] + X[:, 2] + 0.1 * rs.random_sample(args.rows, chunks=args.chunk)

    dtrain = xgb.dask.DaskDMatrix(client, X, y)
    output = xgb.dask.train(
        client,
        {"tree_method": "hist", "objective": "reg:squarederror", "nthread": 1},
        dtrain,
        num_boost_round=args.rounds,
        evals=[(dtrain, "train")],
    )
    rmse = output["history"]["train"]["rmse"]
    print(f"trained {args.rounds} rounds: rmse {rmse[0]:.4f} -> {rmse[-1]:.4f}")

    ax = xgb.plot_importance(output["booster"], max_num_features=10)
    ax.figure.tight_layout()
    ax.figure.savefig(args.out)
    print("feature importance plot:", args.out)
    client.close()


if __name__ == "__main__":
    main()
