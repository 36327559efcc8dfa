"""The sample repository content ``sample_data: true`` commits, laid out as lakeFS's quickstart sample.

lakeFS's own sample is a README and ``lakes.parquet`` (100,000 lakes; the quickstart queries it by
``Country``) plus screenshots for its web UI. lockgate cannot ship lakeFS's binary assets, so it writes
the same two data paths with its own content: a README that walks the quickstart against this server,
and a **synthetic** ``lakes.parquet`` of 100,000 rows with a ``Country`` column (and depth, area and
elevation), generated from a fixed seed so every sample repository holds identical bytes. The UI
screenshots are left out (there is no web UI here).
"""

from __future__ import annotations

import functools
import io

SAMPLE_MESSAGE = "Add sample data"  # lakeFS's commit message for the sample
SAMPLE_ROWS = 100_000
_SEED = 20230315

_COUNTRIES = [
    ("Canada", 30),
    ("United States of America", 12),
    ("Russia", 12),
    ("Finland", 6),
    ("Sweden", 6),
    ("China", 5),
    ("Norway", 4),
    ("Brazil", 3),
    ("Denmark", 2),
    ("Argentina", 2),
    ("Australia", 2),
    ("Chile", 2),
    ("Mongolia", 2),
    ("Kazakhstan", 2),
    ("New Zealand", 1),
    ("Iceland", 1),
    ("Ireland", 1),
    ("United Kingdom", 1),
    ("Germany", 1),
    ("Poland", 1),
    ("Estonia", 1),
    ("Tanzania", 1),
    ("Uganda", 1),
    ("Kenya", 1),
]

README = """# Welcome to the lake

This repository was created with `sample_data: true` on lockgate's embedded lakeFS-API server. It holds
the same paths as lakeFS's quickstart sample, so tools written for the quickstart run against it:

* `lakes.parquet`: {rows:,} lakes, one row each, with `Lake_Name`, `Country`, `Depth_m`, `Area_km2`
  and `Elevation_m`. **The rows are synthetic** (generated from a fixed seed), not lakeFS's dataset.
* `README.md`: this file.

## The quickstart, with any lakeFS client

1. Query `lakefs://{repository}/main/lakes.parquet`, e.g. the five countries with the most lakes:
   `SELECT Country, COUNT(*) FROM lakes GROUP BY Country ORDER BY 2 DESC LIMIT 5`.
2. Create a branch `denmark-lakes` from `main` and overwrite `lakes.parquet` there with only the rows
   whose `Country` is `Denmark`; `main` is untouched.
3. Commit on `denmark-lakes` and merge it into `main`.
4. Changed your mind? Revert the merge commit on `main`: the full table is back.

With the `lakefs` Python package (`pip install lakefs`) the steps read
`repo.branch("denmark-lakes").create("main")`, `branch.object("lakes.parquet").upload(...)`,
`branch.commit(message=...)`, `branch.merge_into("main")` and `repo.branch("main").revert(...)`.
"""


@functools.cache
def lakes_parquet() -> bytes:
    """The synthetic lakes table as Parquet bytes (identical on every call and every machine)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(_SEED)
    names, weights = zip(*_COUNTRIES, strict=True)
    share = np.asarray(weights, dtype=float) / sum(weights)
    country = rng.choice(np.asarray(names, dtype=object), size=SAMPLE_ROWS, p=share)
    table = pa.table(
        {
            "Lake_Name": [f"Lake {index:06d}" for index in range(1, SAMPLE_ROWS + 1)],
            "Country": country.tolist(),
            "Depth_m": np.round(rng.lognormal(2.3, 0.9, SAMPLE_ROWS), 1),
            "Area_km2": np.round(rng.lognormal(0.5, 1.4, SAMPLE_ROWS), 2),
            "Elevation_m": np.round(rng.gamma(2.0, 180.0, SAMPLE_ROWS)).astype("int32"),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def sample_files(repository: str) -> list[tuple[str, bytes]]:
    """(path, bytes) of every sample object for ``repository``."""
    readme = README.format(rows=SAMPLE_ROWS, repository=repository).encode()
    return [("README.md", readme), ("lakes.parquet", lakes_parquet())]
