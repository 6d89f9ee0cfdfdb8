"""What the bench scripts share: their own section of bench/README.md, and the machine's load.

Imported by the scripts beside it (`python bench/<script>.py` puts this folder on sys.path)."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).with_name("README.md")


def write_section(section: str, text: str) -> None:
    """Replace `section` (a `## ` heading line) of bench/README.md with `text`, or append it,
    leaving the other sections alone."""
    current = README.read_text() if README.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    README.write_text(updated.rstrip("\n") + "\n")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, e.g. '1.9 2.0 1.7'."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())
