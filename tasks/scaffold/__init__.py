"""Scaffold a dataset package from a user's data file (``lockgate init``).

==================================  ===============================================================
``tasks.scaffold.profile``          read the file as ingestion does; each column's type, nulls, range
                                    and values (types coerced as the contract will; ranges and nulls
                                    from ``pandera.infer_schema``)
``tasks.scaffold.inference``        the key, task, positive class, features and policies, with why
``tasks.scaffold.render``           the package's files as text: pandera models, GX suite, spec, README
``tasks.scaffold.templates``        the files' ``string.Template`` texts
``tasks.scaffold.run``              ``run_init``: infer, render, check against the file, write
==================================  ===============================================================

The package it writes (``pip install -e DIR``) publishes a ``DatasetSpec`` under the
``lockgate.datasets`` entry point, so every lockgate command knows the dataset by name.
"""

from __future__ import annotations

from tasks.scaffold.inference import (
    DATASET_NAME_PATTERN,
    DATASET_NAME_RULE,
    MAX_INFERRED_CLASSES,
    ScaffoldPlan,
    check_new_dataset_name,
    choose_key,
    choose_positive_class,
    infer_plan,
    infer_task,
    package_name,
)
from tasks.scaffold.profile import ColumnProfile, DataProfile, profile_data, read_data_file
from tasks.scaffold.render import render_scaffold
from tasks.scaffold.run import (
    ScaffoldResult,
    check_output_directory,
    check_scaffold,
    loaded_scaffold,
    run_init,
    write_scaffold,
)

__all__ = [
    "DATASET_NAME_PATTERN",
    "DATASET_NAME_RULE",
    "MAX_INFERRED_CLASSES",
    "ColumnProfile",
    "DataProfile",
    "ScaffoldPlan",
    "ScaffoldResult",
    "check_new_dataset_name",
    "check_output_directory",
    "check_scaffold",
    "choose_key",
    "choose_positive_class",
    "infer_plan",
    "infer_task",
    "loaded_scaffold",
    "package_name",
    "profile_data",
    "read_data_file",
    "render_scaffold",
    "run_init",
    "write_scaffold",
]
