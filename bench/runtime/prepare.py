"""Pack the peers' benchmark models (the very same joblib files) into Serinus bundles.

Usage: python prepare.py WORKDIR   (WORKDIR = the peers' scratch dir, default /tmp/peers)
Writes WORKDIR/serinus/{m1,m2}/ (model.joblib + serinus.json + profile.json) so the runtime
serves the same fitted models with its full metrics (reference profile → feature bins on).
The training sample is regenerated exactly as the peers' train.py does.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification

from serinus_runtime.formats import sha256_hex
from serinus_runtime.pack import pack


def main(work: Path) -> None:
    x, y = make_classification(n_samples=10_000, n_features=20, n_classes=2, random_state=0)
    x = x.astype(np.float32)
    for name in ("m1", "m2"):
        src = work / "models" / name / "model.joblib"
        out = work / "serinus" / name
        model = joblib.load(src)
        pack(model, x, out, name=name, version="1", y=y, format="joblib", overwrite=True)
        # Serve the peers' exact file, not a re-serialisation: same bytes, same model.
        shutil.copyfile(src, out / "model.joblib")
        meta = json.loads((out / "serinus.json").read_text())
        meta["sha256"] = sha256_hex((out / "model.joblib").read_bytes())
        (out / "serinus.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(out, meta["sha256"])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/peers"))
