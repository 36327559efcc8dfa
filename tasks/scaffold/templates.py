"""The files of a scaffolded dataset package, as ``string.Template`` texts (``$name`` placeholders).

Python templates rather than data files, so they ship with the ``tasks`` package without package-data.
"""

from __future__ import annotations

from string import Template

PYPROJECT = Template("""\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "The $name dataset for lockgate: contracts and DatasetSpec."
readme = "README.md"
requires-python = ">=3.11"
# The spec and contracts use lockgate (and the pandas, pandera and Great Expectations it brings):
# install this package into lockgate's environment.
dependencies = ["lockgate"]

# How lockgate finds the dataset: `lockgate datasets` lists every spec published here.
[project.entry-points."lockgate.datasets"]
$name = "$package.dataset:DATASET"

[tool.setuptools]
packages = ["$package"]
""")

INIT = Template('''\
"""The $name dataset for lockgate.

* ``$package.contracts``: its pandera models and GX suite;
* ``$package.dataset.DATASET``: its DatasetSpec, published under the
  ``lockgate.datasets`` entry point.
"""
''')

CONTRACTS = Template('''\
"""Contracts of the $name dataset, scaffolded by ``lockgate init``.

Inferred from $source ($rows rows). Two stages, refined by inheritance, as for
every lockgate dataset:

* ``$raw``: what a file must look like to be read at all: every column
  present and coercible to its type, nulls allowed; extra columns are rejected
  (``strict``).
* ``$validated``: what may reach ``main``: the nulls, ranges and values seen
  in $source, one row per key ($key_text).

Every rule inferred from that one file is marked ``# review:``: widen it to what
the domain allows, or keep it where it is a real rule. Descriptions are
placeholders: say what each column means. The dataset-level checks (Great
Expectations) are in ``$suite``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

$imports
from pandera.typing import Series

if TYPE_CHECKING:
    # Imported where the suite is built: importing GX takes about 2 s.
    import great_expectations as gx

KEY_COLUMNS = $keys
TARGET_COLUMN = $target
FEATURE_COLUMNS = $features


class $raw(pa.DataFrameModel):
    """A row of $name as it arrives: typed, possibly incomplete."""

$raw_fields

    class Config:
        strict = True  # extra columns are a schema change: reject, never drop silently
        coerce = True


class $validated($raw):
    """A validated row of $name, fit to train on."""

$validated_fields
$validated_config

def $suite() -> gx.ExpectationSuite:
    """Dataset-level expectations for a $name batch (Great Expectations 1.x).

    Row-level rules are pandera's (``$validated``); these check what only
    the batch as a whole can show. The bands are starting points computed from
    $source: review each one.

    Returns:
        A new suite named ``$name`` (a fresh object on each call: GX
        mutates the suites it stores).
    """
    import great_expectations as gx

    expect = gx.expectations
    expectations = [
$expectations
    ]
    return gx.ExpectationSuite(name=$name_literal, expectations=expectations)
''')

DATASET = Template('''\
"""The $name dataset as lockgate sees it (scaffolded by ``lockgate init``).

Published under the ``lockgate.datasets`` entry point (``pyproject.toml``), so
every lockgate command knows it by name once this package is installed
(``lockgate datasets`` lists it).
"""

from __future__ import annotations

from tasks.datasets import DatasetSpec

from .contracts import (
    FEATURE_COLUMNS,
    KEY_COLUMNS,
    TARGET_COLUMN,
    $validated,
    $raw,
    $suite,
)

DATASET = DatasetSpec(
    name=$name_literal,
    description=$description,  # review: one line for people
    raw_model=$raw,
    validated_model=$validated,
    expectation_suite=$suite,
    key_columns=KEY_COLUMNS,
    target=TARGET_COLUMN,
    feature_columns=FEATURE_COLUMNS,
    repository=$repository,
$options)
''')

README = Template("""\
# lockgate dataset `$name`

Scaffolded by `lockgate init` from `$source` ($rows rows, $column_count columns).
The package publishes the `DatasetSpec` `$name` under the `lockgate.datasets`
entry point, so every lockgate command can use the dataset by name once the
package is installed.

| file | what it holds |
|---|---|
| `$package/contracts.py` | pandera models `$raw` (raw) and `$validated` (validated), the GX suite `$suite` |
| `$package/dataset.py` | the `DatasetSpec` (`DATASET`): key, target, task, features, policies |
| `pyproject.toml` | the `lockgate.datasets` entry point |

## Use it

```
pip install -e .          # from this directory, into lockgate's environment (offline: --no-build-isolation)
lockgate datasets         # lists $name
lockgate ingest $source --dataset $name
lockgate train --dataset $name
```

## What to review

Everything below was inferred from one file. Each rule in the code is marked
`# review:`; confirm it, widen it, or change it before the first ingest.

1. **Task**: `$task` ($task_reason).$positive
2. **Key**: $key_text ($key_reason). Ingestion stores files as they are, so the
   key must be a column of every file; the validated model refuses empty and
   repeated keys.
3. **Column rules** in `$package/contracts.py` (`$validated`):

| column | type | empty in the file | rule inferred |
|---|---|---|---|
$column_rows

4. **Missing values**: $missing
5. **Encodings**: $encodings
6. **Not features**: $excluded
7. **Expectations** (`$suite`): row count, key uniqueness, target
   completeness and distribution; their bands come from this file.
8. **Slices**: none inferred. Add the groups the model must also be measured by
   (protected attributes, banded numbers), e.g.
   `slices=(Slice("age", bins=(18, 30, 45, 65, 100)),)` in `dataset.py`.
$notes""")
