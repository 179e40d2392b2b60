"""Record the regression fixture: run every case of ``cases.py`` and write its metrics table to
``tables/<case>.parquet``, plus ``tables/fingerprint.json`` (the machine and library versions they were recorded
with; the test compares bitwise on a matching fingerprint, within float tolerance elsewhere).

    python tests/regression/record.py            # every case
    python tests/regression/record.py zipf_categorical ...

Rerun it only when a change is *meant* to change numbers, and say so in the commit."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import CASES, overrides  # noqa: E402
from fingerprint import fingerprint  # noqa: E402

TABLES = HERE / "tables"


def record(names: list[str]) -> None:
    import collapse

    TABLES.mkdir(exist_ok=True)
    for name in names:
        df = collapse.simulate(*overrides(name)).metrics
        df.to_parquet(TABLES / f"{name}.parquet", index=False)
        print(f"{name}: {len(df)} rows, {len(df.columns)} columns", flush=True)
    (TABLES / "fingerprint.json").write_text(json.dumps(fingerprint(), indent=1) + "\n")


if __name__ == "__main__":
    record(sys.argv[1:] or list(CASES))
