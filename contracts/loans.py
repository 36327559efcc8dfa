"""Contracts of the loan-application dataset (credit risk, Agrawal et al. 1993 schema).

Two stages, refined by inheritance:

* ``LoanApplicationRaw``: what a source must look like to be read at all: every column present,
  values coercible to their types. Unexpected extra columns are rejected (``strict``): a new column
  is a schema change that must be declared here first, not something to drop silently.
* ``LoanApplication``: what may reach ``main``: no nulls, every value inside the domain the
  benchmark defines, one row per ``application_id``, commission only below the salary threshold.

``loan_expectation_suite`` adds the dataset-level checks (Great Expectations) that no single row
can fail: batch size, missing-value rates, distributions and label balance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

if TYPE_CHECKING:
    # Imported where the suite is built: importing GX takes about 2 s, which every user of these
    # models (the generator, the CLI) would otherwise pay.
    import great_expectations as gx

KEY_COLUMN = "application_id"
TARGET_COLUMN = "approved"
FEATURE_COLUMNS = (
    "salary",
    "commission",
    "age",
    "education_level",
    "car_maker",
    "zipcode",
    "house_value",
    "years_house_owned",
    "loan_amount",
)
# Codes rather than quantities: monitoring compares their category shares (chi-squared).
CATEGORICAL_COLUMNS = ("education_level", "car_maker", "zipcode")


class LoanApplicationRaw(pa.DataFrameModel):
    """A loan application as it arrives: typed, possibly incomplete."""

    application_id: Series[int] = pa.Field(nullable=True, description="Unique ID of the application.")
    salary: Series[float] = pa.Field(nullable=True, description="Yearly salary (USD).")
    commission: Series[float] = pa.Field(nullable=True, description="Yearly commission (USD).")
    age: Series[int] = pa.Field(nullable=True, description="Applicant age (years).")
    education_level: Series[int] = pa.Field(nullable=True, description="Education level, 0 (lowest) to 4.")
    car_maker: Series[int] = pa.Field(nullable=True, description="Car maker code, 1 to 20.")
    zipcode: Series[int] = pa.Field(nullable=True, description="Zip-code area, 0 to 8.")
    house_value: Series[float] = pa.Field(nullable=True, description="Value of the applicant's house (USD).")
    years_house_owned: Series[int] = pa.Field(nullable=True, description="Years the house is owned, 1 to 30.")
    loan_amount: Series[float] = pa.Field(nullable=True, description="Requested loan (USD).")
    approved: Series[int] = pa.Field(nullable=True, description="Label: 1 approved (group A), 0 declined.")

    class Config:
        strict = True  # extra columns are a schema change: reject, never drop silently
        coerce = True


class LoanApplication(LoanApplicationRaw):
    """A validated loan application, fit to train on."""

    application_id: Series[int] = pa.Field(ge=0, unique=True)
    salary: Series[float] = pa.Field(ge=20_000, le=150_000)
    commission: Series[float] = pa.Field(ge=0, le=75_000)
    age: Series[int] = pa.Field(ge=20, le=80)
    education_level: Series[int] = pa.Field(isin=[0, 1, 2, 3, 4])
    car_maker: Series[int] = pa.Field(ge=1, le=20)
    zipcode: Series[int] = pa.Field(ge=0, le=8)
    house_value: Series[float] = pa.Field(ge=0, le=1_350_000)
    years_house_owned: Series[int] = pa.Field(ge=1, le=30)
    loan_amount: Series[float] = pa.Field(ge=0, le=500_000)
    approved: Series[int] = pa.Field(isin=[0, 1])

    @pa.dataframe_check(error="commission must be 0 when salary >= 75,000 and 10,000-75,000 below it")
    @classmethod
    def commission_follows_salary(cls, frame: pd.DataFrame) -> pd.Series:
        high = frame["salary"] >= 75_000
        follows = (high & (frame["commission"] == 0)) | (~high & frame["commission"].between(10_000, 75_000))
        # A missing salary or commission is already reported once, by its column's not-null check;
        # failing it here too would list one defect under two rules.
        return follows | frame["salary"].isna() | frame["commission"].isna()


def loan_expectation_suite() -> gx.ExpectationSuite:
    """Dataset-level expectations for a loan batch (Great Expectations 1.x).

    Row-level rules (types, ranges, allowed codes, unique IDs) are pandera's job above; these
    check what only the batch as a whole can show: its size, how much of each column is missing,
    where its distributions sit and whether both classes are present. The bands come from the
    generator's benchmark distributions (``tasks/generate.py``) and are wide enough that a
    ``covariate_shift`` of up to 1.0 still passes: drift is for monitoring to report, not for the
    gate to refuse. They assume batches of a few hundred rows or more; smaller ones can fail the
    mean checks by chance.

    Returns:
        A new suite named ``loans`` (a fresh object on each call: GX mutates suites it stores).
    """
    import great_expectations as gx

    expect = gx.expectations
    expectations = [
        # An empty batch is a failed export, not "no new applications"; above 50 million rows
        # (ten times the largest batch we benchmark) the source is almost surely wrong (a file
        # concatenated with itself, a join that multiplied rows).
        expect.ExpectTableRowCountToBeBetween(min_value=1, max_value=50_000_000),
    ]
    # A few missing values are single bad rows that pandera rejects one by one; more than 1% missing
    # in a column means the upstream export lost or renamed that column, which this names directly.
    expectations += [
        expect.ExpectColumnValuesToNotBeNull(column=column, mostly=0.99)
        for column in (KEY_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN)
    ]
    expectations += [
        # Salary is uniform on 20k-150k (mean 85k); the strongest covariate shift moves the mean to
        # about 128k. A mean outside 55k-140k means values in the wrong unit (thousands, cents) or
        # clamped to a bound by a failed join that filled defaults.
        expect.ExpectColumnMeanToBeBetween(column="salary", min_value=55_000, max_value=140_000),
        # Uniform salaries have a standard deviation near 37k (18k at the strongest shift); a
        # near-constant column is a default value written for every row, not real applicants.
        expect.ExpectColumnStdevToBeBetween(column="salary", min_value=10_000),
        # Loans are uniform on 0-500k (mean 250k, about 417k at the strongest shift): a mean
        # outside 100k-450k is a unit or default-fill error, as for salary.
        expect.ExpectColumnMeanToBeBetween(column="loan_amount", min_value=100_000, max_value=450_000),
        # Ages are uniform on 20-80 (mean 50, about 70 at the strongest shift); a mean outside
        # 35-75 is ages stored as birth years' last digits, months, or a filled default.
        expect.ExpectColumnMeanToBeBetween(column="age", min_value=35, max_value=75),
        # Label balance: every benchmark function with 5% label noise approves between about 5%
        # and 95% of applicants. One class only (a filtered export: "approved loans only") cannot
        # train a classifier and means the batch was selected on its label.
        expect.ExpectColumnMeanToBeBetween(column=TARGET_COLUMN, min_value=0.02, max_value=0.98),
        # Key uniqueness across the batch: pandera rejects every duplicated ID row by row; this
        # says at a glance when duplicates are systemic (a batch appended to itself). On a sampled
        # batch it sees only duplicates that fall in the sample, so it is a signal, not the proof.
        expect.ExpectColumnProportionOfUniqueValuesToBeBetween(column=KEY_COLUMN, min_value=0.99),
    ]
    return gx.ExpectationSuite(name="loans", expectations=expectations)
