"""`serinus-runtime`: the inference server's command line (see `serinus-runtime --help`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from serinus_runtime.config import parse


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse(argv)
    if settings.workers > 1 and settings.server == "native":
        # Fork the workers before numpy/sklearn are imported (no threads exist at fork time).
        from serinus_runtime.workers import run_workers

        return run_workers(settings)
    from serinus_runtime.runner import run  # after argument errors: they need no heavy imports

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
