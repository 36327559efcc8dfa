"""The outcome-label contract: what a feedback batch must hold before it is stored.

Outcomes arrive after the fact (a loan repaid or not) and are keyed by the request ID the serving
app answered with (``X-Request-ID``) and the record's index in that request (0 for single-record
requests). Monitoring joins them with the inference log to measure live model quality.
"""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series

LABEL_COLUMNS = ("request_id", "record_index", "outcome", "observed_at")


class OutcomeLabel(pa.DataFrameModel):
    """One observed outcome of one answered record."""

    request_id: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": 200}, description="X-Request-ID of the answered request."
    )
    record_index: Series[int] = pa.Field(ge=0, description="Index of the record within its request.")
    outcome: Series[int] = pa.Field(isin=[0, 1], description="Observed label, 0 or 1.")
    observed_at: Series[pa.DateTime] = pa.Field(description="When the outcome was observed (UTC).")

    class Config:
        strict = True
        coerce = True
        unique = ["request_id", "record_index"]


class OutcomeValue(OutcomeLabel):
    """An observed outcome of a model of any task: a class label or a number (checked against the
    model's classes, or as a number for a regressor, by ``tasks.feedback.check_labels``)."""

    outcome: Series[object] = pa.Field(nullable=False, description="Observed class label or value.")

    class Config:
        strict = True
        coerce = False
        unique = ["request_id", "record_index"]


class OutcomeNumber(OutcomeLabel):
    """An observed outcome of a regressor: a finite number."""

    outcome: Series[float] = pa.Field(nullable=False, description="Observed value.")
