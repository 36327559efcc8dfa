"""Contracts of the diabetes data of Efron, Hastie, Johnstone & Tibshirani (2004), from scikit-learn.

Each row is one of 442 diabetes patients: ten baseline variables (age, sex, body mass index, mean
blood pressure and six blood serum measurements) and the response to predict, a quantitative measure
of disease progression one year after baseline (a regression target). Values are in their original
units (scikit-learn's ``load_diabetes(scaled=False)``), not the mean-centred, scaled copy scikit-learn
returns by default. Column names are scikit-learn's:

* ``s1`` total serum cholesterol (TC), ``s2`` low-density lipoproteins (LDL), ``s3`` high-density
  lipoproteins (HDL), ``s6`` blood glucose, all in mg/dL;
* ``s4`` the ratio TC / HDL, rounded (to a whole number in most rows);
* ``s5`` the natural log of the serum triglycerides (TG, mg/dL). scikit-learn says "possibly"; the
  data settle it: LDL equals TC - HDL - exp(s5) / 5 (the Friedewald estimate) within 0.4 mg/dL in
  every row.

Two stages, refined by inheritance:

* ``DiabetesRaw``: every column present and coercible to its type; extra columns are rejected
  (``strict``), as for every lockgate dataset.
* ``DiabetesPatient``: what may reach ``main``: no nulls, each value inside the range a living adult
  patient can have, the lipid columns consistent with each other, one row per ``patient_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

if TYPE_CHECKING:
    # Imported where the suite is built: importing GX takes about 2 s.
    import great_expectations as gx

KEY_COLUMN = "patient_id"
TARGET_COLUMN = "disease_progression"
FEATURE_COLUMNS = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
# A code, not a quantity: monitoring compares its shares (chi-squared), the model one-hot encodes it.
CATEGORICAL_COLUMNS = ("sex",)
SEX_CODES = (1, 2)
# Rounding in the source (LDL to 0.1 mg/dL, s5 to four decimals, TC/HDL often to a whole number)
# moves the identities below by at most 0.4 and 0.65 in the reference; 1 leaves a margin, while a
# swapped or shifted lipid column misses by tens.
LIPID_TOLERANCE = 1.0


class DiabetesRaw(pa.DataFrameModel):
    """One patient's baseline record and outcome as they arrive: typed, possibly incomplete."""

    patient_id: Series[int] = pa.Field(nullable=True, description="Unique ID of the patient.")
    age: Series[int] = pa.Field(nullable=True, description="Age at baseline (years).")
    sex: Series[int] = pa.Field(
        nullable=True, description="Sex, coded 1 or 2 (which is which is unpublished)."
    )
    bmi: Series[float] = pa.Field(nullable=True, description="Body mass index (kg/m^2).")
    bp: Series[float] = pa.Field(nullable=True, description="Average blood pressure (mmHg).")
    s1: Series[float] = pa.Field(nullable=True, description="tc: total serum cholesterol (mg/dL).")
    s2: Series[float] = pa.Field(nullable=True, description="ldl: low-density lipoproteins (mg/dL).")
    s3: Series[float] = pa.Field(nullable=True, description="hdl: high-density lipoproteins (mg/dL).")
    s4: Series[float] = pa.Field(nullable=True, description="tch: total cholesterol / HDL (ratio).")
    s5: Series[float] = pa.Field(nullable=True, description="ltg: ln of serum triglycerides (mg/dL).")
    s6: Series[float] = pa.Field(nullable=True, description="glu: blood sugar level (mg/dL).")
    disease_progression: Series[float] = pa.Field(
        nullable=True, description="Label: disease progression one year after baseline (a score)."
    )

    class Config:
        strict = True  # extra columns are a schema change: reject, never drop silently
        coerce = True


# Why each bound holds:
# * the cohort is adult (the youngest reference patient is 19) and no one is older than 120;
# * a BMI below 10 or above 100 kg/m^2, or a mean arterial pressure above 300 mmHg, is not a living
#   patient but another unit or column (mean-centred scaled values, about +-0.1, fail them all);
# * concentrations are positive, and HDL is a part of total cholesterol, so TC / HDL exceeds 1;
# * s5 is a logarithm and may take any sign, so only the Friedewald check below constrains it.
class DiabetesPatient(DiabetesRaw):
    """A validated patient record, fit to train on."""

    patient_id: Series[int] = pa.Field(ge=0, unique=True)
    age: Series[int] = pa.Field(ge=18, le=120)
    sex: Series[int] = pa.Field(isin=list(SEX_CODES))
    bmi: Series[float] = pa.Field(ge=10, le=100)
    bp: Series[float] = pa.Field(gt=0, le=300)
    s1: Series[float] = pa.Field(gt=0)
    s2: Series[float] = pa.Field(gt=0)
    s3: Series[float] = pa.Field(gt=0)
    s4: Series[float] = pa.Field(gt=1)
    s5: Series[float] = pa.Field()
    s6: Series[float] = pa.Field(gt=0)
    # A score on the study's own scale (25-346 in the reference); its scale is the GX suite's to check.
    disease_progression: Series[float] = pa.Field(ge=0)

    @pa.dataframe_check(error="s2 (LDL) must equal s1 - s3 - exp(s5) / 5 (Friedewald) within 1 mg/dL")
    @classmethod
    def ldl_follows_friedewald(cls, frame: pd.DataFrame) -> pd.Series:
        # The source computed LDL from TC, HDL and TG, so a row where the identity fails has its
        # lipid columns swapped, shifted or in another unit (mmol/L).
        with np.errstate(over="ignore"):  # exp of a raw triglyceride value (e.g. 150) overflows: a failure
            estimate = frame["s1"] - frame["s3"] - np.exp(frame["s5"]) / 5
        follows = (frame["s2"] - estimate).abs() <= LIPID_TOLERANCE
        # A missing value is already reported once, by its column's not-null check.
        return follows | frame[["s1", "s2", "s3", "s5"]].isna().any(axis=1)

    @pa.dataframe_check(error="s4 (TC/HDL) must equal s1 / s3 within 1")
    @classmethod
    def ratio_follows_cholesterol(cls, frame: pd.DataFrame) -> pd.Series:
        # s4 is a ratio of two other columns, rounded; far from it, one of the three is misaligned.
        follows = (frame["s4"] - frame["s1"] / frame["s3"]).abs() <= LIPID_TOLERANCE
        return follows | frame[["s1", "s3", "s4"]].isna().any(axis=1)


def diabetes_expectation_suite() -> gx.ExpectationSuite:
    """Dataset-level expectations for a diabetes batch (Great Expectations 1.x).

    Row-level rules are pandera's (``DiabetesPatient``); these check the batch as a whole. The bands
    are wide around the 442 reference patients, so another cohort of adult diabetes patients passes
    while values in other units, scaled copies or a degenerate target do not.

    Returns:
        A new suite named ``diabetes``.
    """
    import great_expectations as gx

    expect = gx.expectations
    expectations = [
        # An empty batch is a failed export; above a million patients the source is not a clinical
        # cohort (the reference has 442) but something else entirely.
        expect.ExpectTableRowCountToBeBetween(min_value=1, max_value=1_000_000),
    ]
    # More than 1% missing in a column means the export lost or renamed it; single missing values
    # are pandera's to reject row by row.
    expectations += [
        expect.ExpectColumnValuesToNotBeNull(column=column, mostly=0.99)
        for column in (KEY_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN)
    ]
    expectations += [
        # The reference averages 48.5 years; a mean outside 30-70 is not an adult diabetes cohort but
        # ages in months or another column.
        expect.ExpectColumnMeanToBeBetween(column="age", min_value=30, max_value=70),
        # 47% of the reference is coded 2. Outside 10%-90% the batch was selected on sex (its slices
        # would be near empty) or the coding changed (0/1 fails pandera row by row).
        expect.ExpectColumnMeanToBeBetween(column="sex", min_value=1.1, max_value=1.9),
        # BMI averages 26.4 kg/m^2; 20-35 allows heavier or leaner cohorts and catches BMI swapped with
        # another column or scikit-learn's scaled copy (mean 0).
        expect.ExpectColumnMeanToBeBetween(column="bmi", min_value=20, max_value=35),
        # Total cholesterol averages 189 mg/dL; in mmol/L it would be about 4.9. 120-300 tells them apart.
        expect.ExpectColumnMeanToBeBetween(column="s1", min_value=120, max_value=300),
        # Blood glucose averages 91 mg/dL (5 mmol/L); 60-200 allows poorly controlled cohorts.
        expect.ExpectColumnMeanToBeBetween(column="s6", min_value=60, max_value=200),
        # Progression averages 152 (25-346) on the study's scale; a mean outside 50-300 is another
        # scale (e.g. standardised, mean 0) and the model would be trained on a different quantity.
        expect.ExpectColumnMeanToBeBetween(column=TARGET_COLUMN, min_value=50, max_value=300),
        # A near-constant target (the reference's standard deviation is 77) teaches a regression
        # nothing but its mean: the batch was selected on its outcome.
        expect.ExpectColumnStdevToBeBetween(column=TARGET_COLUMN, min_value=10),
        # Each row is one patient: duplicated IDs mean a batch appended to itself (pandera names every
        # duplicated row; this flags the systemic case).
        expect.ExpectColumnProportionOfUniqueValuesToBeBetween(column=KEY_COLUMN, min_value=0.99),
    ]
    return gx.ExpectationSuite(name="diabetes", expectations=expectations)
