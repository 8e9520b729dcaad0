"""The C reference servers (bench/c/*.c), compiled at bench time when a C compiler is here.

Never shipped: the image has no compiler, so inside it these rows are skipped with a note.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "c"


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def build(name: str, out: Path) -> tuple[Path | None, str]:
    """(the binary, "") once built into `out`, or (None, why not)."""
    cc = compiler()
    if cc is None:
        return None, "no C compiler here (cc, gcc): the C rows are skipped"
    out.mkdir(parents=True, exist_ok=True)
    binary = out / name
    source = SOURCES / f"{name}.c"
    run = subprocess.run(
        [cc, "-O2", "-Wall", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0:
        return None, f"{cc} failed on {source.name}: {run.stderr.strip()[-300:]}"
    return binary, ""
