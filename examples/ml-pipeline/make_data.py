"""Write the example's datasets into data/ (they are committed; run this to make them again).

All come from one synthetic problem (scikit-learn's make_classification), so
models trained on them can be compared on the same holdout set:

- small.csv: 60 rows: a first, modest model.
- large.csv: 2,000 rows: a clearly better model, which replaces the champion.
- noisy.csv: 2,000 rows with the labels shuffled: a worse model, rejected.
- broken.csv: no ``target`` column: training fails and an alert fires.
- holdout.csv: 1,000 rows never trained on: every model is judged on it.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

HERE = Path(__file__).resolve().parent / "data"
FEATURES = [f"f{i}" for i in range(6)]


def main() -> None:
    x, y = make_classification(
        n_samples=4_000, n_features=6, n_informative=4, flip_y=0.03, class_sep=0.8, random_state=7
    )
    table = pd.DataFrame(x.round(5), columns=FEATURES).assign(target=y)
    holdout, rest = table.iloc[:1000], table.iloc[1000:]
    shuffled = rest.iloc[:2000].assign(target=np.random.default_rng(1).permutation(y[1000:3000]))
    HERE.mkdir(exist_ok=True)
    holdout.to_csv(HERE / "holdout.csv", index=False)
    rest.iloc[:60].to_csv(HERE / "small.csv", index=False)
    rest.iloc[:2000].to_csv(HERE / "large.csv", index=False)
    shuffled.to_csv(HERE / "noisy.csv", index=False)
    rest.iloc[:100].drop(columns="target").to_csv(HERE / "broken.csv", index=False)


if __name__ == "__main__":
    main()
