"""Regenerate the example bundles in examples/bundles/ from scikit-learn's bundled datasets.

    python examples/make_bundles.py [OUT_DIR]

iris (LogisticRegression, 3 classes), breast-cancer (RandomForestClassifier, 2 classes) and
diabetes (Ridge regression). Each is fitted on a fixed split and packed with its training rows as
the reference sample; a second iris version (`iris-v2`) is a deliberately worse model, used to show
a canary that should be rolled back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from serinus_runtime.pack import pack


def _names(raw: list[str]) -> list[str]:
    return [n.replace(" (cm)", "_cm").replace(" ", "_") for n in raw]


def main(out: Path) -> None:
    iris = load_iris()
    xtr, _, ytr, _ = train_test_split(iris.data, iris.target, test_size=0.3, random_state=0)
    ytr = iris.target_names[ytr]  # string classes: setosa, versicolor, virginica
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(xtr, ytr)
    names = _names(iris.feature_names)
    pack(
        good,
        xtr,
        out / "iris",
        name="iris",
        version="1",
        y=ytr,
        feature_names=names,
        overwrite=True,
    )
    # A worse candidate: only sees one feature's worth of signal (the others shuffled).
    rng = np.random.default_rng(0)
    xbad = xtr.copy()
    for j in (0, 2, 3):
        xbad[:, j] = rng.permutation(xbad[:, j])
    bad = LogisticRegression(max_iter=1000).fit(xbad, ytr)
    pack(
        bad,
        xtr,
        out / "iris-v2",
        name="iris",
        version="2",
        y=ytr,
        feature_names=names,
        overwrite=True,
    )

    bc = load_breast_cancer()
    xtr, _, ytr, _ = train_test_split(bc.data, bc.target, test_size=0.3, random_state=0)
    rf = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).fit(xtr, ytr)
    pack(
        rf,
        xtr,
        out / "breast-cancer",
        name="breast-cancer",
        version="1",
        y=ytr,
        feature_names=_names(list(bc.feature_names)),
        overwrite=True,
    )

    db = load_diabetes()
    xtr, _, ytr, _ = train_test_split(db.data, db.target, test_size=0.3, random_state=0)
    ridge = Ridge(alpha=1.0).fit(xtr, ytr)
    pack(
        ridge,
        xtr,
        out / "diabetes",
        name="diabetes",
        version="1",
        y=ytr,
        feature_names=list(db.feature_names),
        overwrite=True,
    )
    for d in sorted(out.iterdir()):
        print(d, sum(f.stat().st_size for f in d.iterdir()), "bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "bundles")
