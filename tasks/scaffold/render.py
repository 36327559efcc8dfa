"""Render a ``ScaffoldPlan`` as the files of an installable package: readable pandera models, a GX suite,
a DatasetSpec, ``pyproject.toml`` and a README. Text in, text out: nothing is written here."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from tasks.scaffold import templates
from tasks.scaffold.inference import MAX_CODE_VALUES, ScaffoldPlan, attribute_names
from tasks.scaffold.profile import ColumnProfile

LINE_LENGTH = 100
ANNOTATIONS = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "str": "str",
    "datetime": "pd.Timestamp",
    "other": "object",
}
DESCRIPTIONS = {
    "int": "Integer",
    "float": "Number",
    "bool": "True or false",
    "str": "Text",
    "datetime": "Date and time",
    "other": "Values of a type no encoder takes",
}


def render_scaffold(plan: ScaffoldPlan) -> dict[str, str]:
    """The package's files by path relative to its directory (``pyproject.toml``, ``PKG/dataset.py``...)."""
    names = _names(plan)
    package = plan.package
    return {
        "pyproject.toml": templates.PYPROJECT.substitute(
            distribution=plan.distribution, name=plan.name, package=package
        ),
        "README.md": render_readme(plan),
        f"{package}/__init__.py": templates.INIT.substitute(name=plan.name, package=package),
        f"{package}/contracts.py": render_contracts(plan),
        f"{package}/dataset.py": templates.DATASET.substitute(
            names,
            name=plan.name,
            source=plan.source,
            name_literal=_literal(plan.name),
            description=_literal(f"{plan.name}, scaffolded from {plan.source}."),
            repository=_literal(plan.repository),
            options=_spec_options(plan),
        ),
    }


def render_contracts(plan: ScaffoldPlan) -> str:
    """``contracts.py``: the raw and validated models and the expectation suite."""
    profile = plan.profile
    attributes = attribute_names(profile.names)
    raw_fields = [_raw_field(plan, column, attributes[column.name]) for column in profile.columns]
    validated_fields = [_validated_field(plan, column, attributes[column.name]) for column in profile.columns]
    config = ""
    if len(plan.key_columns) > 1:
        config = (
            "\n    class Config:\n        # review: the compound key: no two rows share these values\n"
            f"        unique = {_literal(list(plan.key_columns))}\n"
        )
    datetimes = any(c.kind == "datetime" for c in profile.columns)
    imports = ("import pandas as pd\n" if datetimes else "") + "import pandera.pandas as pa"
    return templates.CONTRACTS.substitute(
        _names(plan),
        name=plan.name,
        name_literal=_literal(plan.name),
        source=plan.source,
        rows=f"{profile.rows:,}",
        key_text=", ".join(f"``{k}``" for k in plan.key_columns),
        imports=imports,
        keys=_sequence(tuple(plan.key_columns), indent=0),
        target=_literal(plan.target),
        features=_sequence(tuple(plan.feature_columns), indent=0),
        raw_fields="\n".join(raw_fields),
        validated_fields="\n".join(validated_fields),
        validated_config=config,
        expectations="\n".join(_expectations(plan)),
    )


def render_readme(plan: ScaffoldPlan) -> str:
    """``README.md``: how to install the package and what to review."""
    profile = plan.profile
    positive = ""
    if plan.task == "binary":
        positive = f" Positive class: `{plan.positive_class!r}` ({plan.positive_reason})."
    rows = [f"| `{c.name}` | {c.kind} | {c.nulls} | {_rule_text(plan, c)} |" for c in profile.columns]
    missing = (
        ", ".join(f"`{c}`" for c in plan.missing) + " have empty values in the file and are imputed with the "
        'training mean (`missing=`; `"zero"` imputes 0, `"refuse"` makes an empty value a violation).'
        if plan.missing
        else "no numeric feature has empty values in the file, so every one refuses nulls (the default)."
    )
    encodings = (
        ", ".join(f"`{c}`" for c in plan.encodings) + " enter the model one-hot (a vocabulary learnt in "
        "training, with an unknown bucket for new values and nulls); numbers are standardised."
        if plan.encodings
        else "every feature is a number (standardised) or a boolean (0/1)."
    )
    excluded = (
        "; ".join(f"`{c}`: {reason}" for c, reason in plan.excluded.items()) + "."
        if plan.excluded
        else "every column but the key and the target is a feature."
    )
    notes = "".join(f"- {note}\n" for note in plan.notes)
    return templates.README.substitute(
        _names(plan),
        name=plan.name,
        source=plan.source,
        rows=f"{profile.rows:,}",
        column_count=len(profile.columns),
        task=plan.task,
        task_reason=plan.task_reason,
        positive=positive,
        key_text=", ".join(f"`{k}`" for k in plan.key_columns),
        key_reason=plan.key_reason,
        column_rows="\n".join(rows),
        missing=missing,
        encodings=encodings,
        excluded=excluded,
        notes=f"\n## Notes on the data\n\n{notes}" if notes else "",
    )


def _names(plan: ScaffoldPlan) -> dict[str, str]:
    """Class and function names of the package."""
    camel = "".join(part.capitalize() for part in plan.name.split("-"))
    return {
        "package": plan.package,
        "raw": f"{camel}Raw",
        "validated": camel,
        "suite": f"{plan.name.replace('-', '_')}_expectation_suite",
    }


def _raw_field(plan: ScaffoldPlan, column: ColumnProfile, attribute: str) -> str:
    if column.name in plan.key_columns:
        description = "Identifies the row (the key)."
    elif column.name == plan.target:
        description = "The label the model learns (the target)."
    else:
        description = f"{DESCRIPTIONS[column.kind]}. Describe it."
    arguments = ["nullable=True", *_alias(column, attribute), f"description={_literal(description)}"]
    return _field(attribute, column.kind, arguments)


def _validated_field(plan: ScaffoldPlan, column: ColumnProfile, attribute: str) -> str:
    """The field with its inferred checks, under a ``# review:`` comment saying where they came from."""
    arguments, why = _checks(plan, column)
    nullable = column.nullable and column.name != plan.target and column.name not in plan.key_columns
    if nullable:
        arguments.append("nullable=True")
        why.append(f"{column.nulls} of {plan.profile.rows} rows empty")
    elif column.name == plan.target and column.nulls:
        why.append(f"{column.nulls} rows have no label, which this refuses")
    else:
        why.append("never empty")
    arguments += _alias(column, attribute)
    comment = f"    # review: {'; '.join(why)} in {plan.source}"
    return _wrap_comment(comment) + "\n" + _field(attribute, column.kind, arguments)


def _checks(plan: ScaffoldPlan, column: ColumnProfile) -> tuple[list[str], list[str]]:
    """The pandera checks of a validated column, and the reasons for the comment."""
    if column.name in plan.key_columns:
        if len(plan.key_columns) == 1:
            return ["unique=True"], ["the key: one row per value"]
        return [], ["part of the key"]
    if column.name == plan.target and plan.task != "regression" and plan.classes is not None:
        return [f"isin={_literal(list(plan.classes))}"], [f"the {len(plan.classes)} classes seen"]
    listed = column.values is not None and (
        column.kind in ("str", "bool") or (column.kind == "int" and len(column.values) <= MAX_CODE_VALUES)
    )
    if listed and column.kind != "bool":
        return [f"isin={_literal(list(column.values))}"], [f"the {len(column.values)} values seen"]
    if column.numeric and column.minimum is not None and column.maximum is not None:
        seen = f"{_number(column, column.minimum)} to {_number(column, column.maximum)}"
        if column.kind == "float":  # rounded outward to four significant digits, to read
            low, high = repr(_loose(column.minimum, up=False)), repr(_loose(column.maximum, up=True))
        else:
            low, high = _number(column, column.minimum), _number(column, column.maximum)
        return [f"ge={low}", f"le={high}"], [f"the range seen ({seen})"]
    if column.kind == "str":
        return [], [f"{column.distinct} distinct values, too many to list"]
    return [], []


def _rule_text(plan: ScaffoldPlan, column: ColumnProfile) -> str:
    """The validated rule of a column, for the README's table."""
    arguments, _ = _checks(plan, column)
    shown = [a if len(a) <= 60 else a[:57] + "...]" for a in arguments]
    return ", ".join(f"`{a}`" for a in shown) or "type only"


def _spec_options(plan: ScaffoldPlan) -> str:
    """The DatasetSpec arguments after ``repository``, each under the comment saying how it was chosen."""
    lines = [*_comment(f"review: {plan.task_reason}; confirm the task."), f"    task={_literal(plan.task)},"]
    if plan.task == "binary":
        lines += _comment(f"review: {plan.positive_reason}; the model gives the probability of this class.")
        lines.append(f"    positive_class={_literal(plan.positive_class)},")
    if plan.encodings:
        lines += _comment(
            "Text features enter the model one-hot: a vocabulary learnt in training, plus an unknown bucket "
            "for new values and nulls (the default for text, written out to review)."
        )
        lines.append(_keyword("encodings", dict(plan.encodings)))
    if plan.missing:
        lines += _comment(
            'review: numeric features with empty values in the file, imputed with the training mean ("zero" '
            'imputes 0; "refuse", the default, makes an empty value a contract violation).'
        )
        lines.append(_keyword("missing", dict(plan.missing)))
    if plan.over_max_categories != "refuse":
        lines += _comment(
            "review: some text features have more values than max_categories: keep the most frequent."
        )
        lines.append(f"    over_max_categories={_literal(plan.over_max_categories)},")
    lines += _comment(
        "review: the groups the model is also evaluated and monitored by (protected attributes, banded "
        'numbers), e.g. Slice("age", bins=(18, 30, 45, 65, 100)) from tasks.datasets; none inferred.'
    )
    lines.append("    slices=(),")
    return "\n".join(lines) + "\n"


def _expectations(plan: ScaffoldPlan) -> list[str]:
    """The suite's starting expectations, each under a comment saying why."""
    profile, target = plan.profile, plan.target
    label = profile.column(target)
    items: list[tuple[str, str]] = [
        (
            "An empty batch is a failed export. The upper bound (1,000 times this file, at least a million) "
            "catches a runaway export or a join that multiplied rows: set it to your largest batch.",
            f"ExpectTableRowCountToBeBetween(min_value=1, max_value={max(1_000_000, profile.rows * 1000):_})",
        )
    ]
    if len(plan.key_columns) == 1:
        items.append(
            (
                "Pandera names every repeated key row by row; this says when repeats are systemic (a batch "
                "appended to itself).",
                f"ExpectColumnProportionOfUniqueValuesToBeBetween(column={_literal(plan.key_columns[0])}, "
                "min_value=0.99)",
            )
        )
    else:
        items.append(
            (
                "Pandera names every repeated key row by row; this says when repeats are systemic.",
                f"ExpectCompoundColumnsToBeUnique(column_list={_literal(list(plan.key_columns))}, "
                "mostly=0.99)",
            )
        )
    items.append(
        (
            "More than 1% of rows without a label means the export lost the outcome column or joined "
            "it badly.",
            f"ExpectColumnValuesToNotBeNull(column={_literal(target)}, mostly=0.99)",
        )
    )
    items += _target_expectations(plan, label)
    lines = []
    for why, call in items:
        lines += _comment(why, indent=8)
        line = f"        expect.{call},"
        if len(line) > LINE_LENGTH:
            name, _, arguments = call.partition("(")
            line = f"        expect.{name}(\n            {arguments[:-1]}\n        ),"
        lines.append(line)
    return lines


def _target_expectations(plan: ScaffoldPlan, label: ColumnProfile) -> list[tuple[str, str]]:
    """Where the target's distribution may move: class shares, classes, or mean and spread."""
    target, typed = _literal(plan.target), plan.profile.typed[plan.target].dropna()
    if plan.task == "binary":
        share = float((typed == plan.positive_class).mean())
        low, high = math.floor(share / 2 * 1000) / 1000, math.floor((1 - share) / 2 * 1000) / 1000
        positive = _literal([plan.positive_class])
        return [
            (
                f"Class balance: {share:.1%} of the labelled rows in the file are {plan.positive_class!r}. A "
                "batch where either class has under half its share here was probably selected on its label.",
                f"ExpectColumnValuesToBeInSet(column={target}, value_set={positive}, mostly={low})",
            ),
            (
                "... and the other class keeps at least half its share too.",
                f"ExpectColumnValuesToNotBeInSet(column={target}, value_set={positive}, mostly={high})",
            ),
        ]
    if plan.task == "multiclass":
        found = []
        if plan.classes is not None:
            found.append(
                (
                    "No class the model was not built for (pandera refuses each such row; this names the "
                    "systemic case, a relabelled export).",
                    f"ExpectColumnDistinctValuesToBeInSet(column={target}, "
                    f"value_set={_literal(list(plan.classes))})",
                )
            )
        found.append(
            (
                "A batch of one class only was selected on its label and teaches nothing.",
                f"ExpectColumnUniqueValueCountToBeBetween(column={target}, min_value=2)",
            )
        )
        return found
    mean, std = label.mean or 0.0, label.std or 0.0
    low, high = _loose(mean - 2 * std, up=False), _loose(mean + 2 * std, up=True)
    return [
        (
            f"The target's mean is {mean:.4g} in the file (standard deviation {std:.4g}); a batch mean two "
            "standard deviations away is another unit or a filtered export.",
            f"ExpectColumnMeanToBeBetween(column={target}, min_value={low!r}, max_value={high!r})",
        ),
        (
            "A near-constant target is a default value written for every row.",
            f"ExpectColumnStdevToBeBetween(column={target}, min_value={_loose(std / 10, up=False)!r})",
        ),
    ]


def _field(attribute: str, kind: str, arguments: Sequence[str]) -> str:
    """``attribute: Series[T] = pa.Field(...)``, wrapped one argument a line when long."""
    head = f"    {attribute}: Series[{ANNOTATIONS[kind]}] = pa.Field("
    line = head + ", ".join(arguments) + ")"
    if len(line) <= LINE_LENGTH:
        return line
    body = [f"        {_wrap_argument(argument)}," for argument in arguments]
    return "\n".join([head, *body, "    )"])


def _wrap_argument(argument: str) -> str:
    """A keyword argument whose list value is too long for one line, one item a line."""
    if len(argument) + 9 <= LINE_LENGTH or "=[" not in argument:
        return argument
    name, _, value = argument.partition("=")
    items = _split_list(value)
    return f"{name}=[\n" + "".join(f"            {item},\n" for item in items) + "        ]"


def _split_list(literal: str) -> list[str]:
    import ast

    return [_literal(item) for item in ast.literal_eval(literal)]


def _keyword(name: str, mapping: dict[str, str]) -> str:
    """``name={...},`` in the spec call, one entry a line when long."""
    line = f"    {name}={_literal(mapping)},"
    if len(line) <= LINE_LENGTH:
        return line
    entries = "".join(f"        {_literal(k)}: {_literal(v)},\n" for k, v in mapping.items())
    return f"    {name}={{\n{entries}    }},"


def _sequence(values: tuple[str, ...], *, indent: int) -> str:
    """A tuple literal, one item a line when long."""
    line = _literal(values)
    if len(line) + 20 <= LINE_LENGTH:
        return line
    pad = " " * (indent + 4)
    return "(\n" + "".join(f"{pad}{_literal(v)},\n" for v in values) + " " * indent + ")"


def _alias(column: ColumnProfile, attribute: str) -> list[str]:
    return [] if attribute == column.name else [f"alias={_literal(column.name)}"]


def _comment(text: str, *, indent: int = 4) -> list[str]:
    """``text`` as ``#`` lines that fit the line length."""
    import textwrap

    pad = " " * indent + "# "
    return textwrap.wrap(text, width=LINE_LENGTH, initial_indent=pad, subsequent_indent=pad)


def _wrap_comment(line: str) -> str:
    return "\n".join(_comment(line.strip().removeprefix("# "), indent=4))


def _number(column: ColumnProfile, value: float) -> str:
    return repr(int(value)) if column.kind == "int" else repr(float(value))


def _loose(value: float, *, up: bool) -> float:
    """``value`` rounded outward to four significant digits."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(abs(value))) - 3)
    steps = value / scale
    steps = round(steps) if abs(steps - round(steps)) < 1e-6 else steps  # 39.52 / 0.01 is 3951.9999...
    rounded = float(f"{(math.ceil if up else math.floor)(steps) * scale:.6g}")
    if (up and rounded < value) or (not up and rounded > value):
        rounded += scale if up else -scale
    return rounded


def _literal(value: Any) -> str:
    """A Python literal for a rendered value (strings double-quoted, as ruff formats them)."""
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, Iterable):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)
