"""Contracts of the breast cancer Wisconsin (diagnostic) dataset, as shipped with scikit-learn.

Each row describes the cell nuclei in one digitised image of a fine needle aspirate of a breast
mass. Ten measurements are made per nucleus (radius, texture, perimeter, area, smoothness,
compactness, concavity, concave points, symmetry, fractal dimension) and summarised three ways:
``mean_*`` over all nuclei, ``*_error`` (standard error) and ``worst_*`` (mean of the three largest
values). Column names are scikit-learn's feature names in snake case.

Two stages, refined by inheritance:

* ``BreastCancerRaw``: every column present and coercible to its type; extra columns are rejected
  (``strict``), as for every lockgate dataset.
* ``BreastCancerSample``: what may reach ``main``: no nulls, each measurement inside the range its
  geometry allows, a known diagnosis, one row per ``sample_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

if TYPE_CHECKING:
    # Imported where the suite is built: importing GX takes about 2 s.
    import great_expectations as gx

KEY_COLUMN = "sample_id"
TARGET_COLUMN = "diagnosis_benign"
MEASUREMENTS = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)
# scikit-learn's order: the ten means, then the ten standard errors, then the ten worst values.
FEATURE_COLUMNS = (
    *(f"mean_{name}" for name in MEASUREMENTS),
    *(f"{name}_error" for name in MEASUREMENTS),
    *(f"worst_{name}" for name in MEASUREMENTS),
)


def _raw(description: str) -> Any:
    """A raw column: typed, may be null (the validated model forbids nulls)."""
    return pa.Field(nullable=True, description=description)


class BreastCancerRaw(pa.DataFrameModel):
    """One image's nucleus measurements as they arrive: typed, possibly incomplete."""

    sample_id: Series[int] = pa.Field(nullable=True, description="Unique ID of the sample (image).")
    mean_radius: Series[float] = _raw("Mean distance from centre to the outline, over all nuclei.")
    mean_texture: Series[float] = _raw("Mean standard deviation of the grey-scale values.")
    mean_perimeter: Series[float] = _raw("Mean nucleus perimeter.")
    mean_area: Series[float] = _raw("Mean nucleus area.")
    mean_smoothness: Series[float] = _raw("Mean local variation in radius lengths.")
    mean_compactness: Series[float] = _raw("Mean perimeter^2 / area - 1 (0 for a circle).")
    mean_concavity: Series[float] = _raw("Mean severity of the concave portions of the outline.")
    mean_concave_points: Series[float] = _raw("Mean number of concave portions of the outline.")
    mean_symmetry: Series[float] = _raw("Mean nucleus symmetry.")
    mean_fractal_dimension: Series[float] = _raw("Mean 'coastline approximation' - 1.")
    radius_error: Series[float] = _raw("Standard error of the radius.")
    texture_error: Series[float] = _raw("Standard error of the texture.")
    perimeter_error: Series[float] = _raw("Standard error of the perimeter.")
    area_error: Series[float] = _raw("Standard error of the area.")
    smoothness_error: Series[float] = _raw("Standard error of the smoothness.")
    compactness_error: Series[float] = _raw("Standard error of the compactness.")
    concavity_error: Series[float] = _raw("Standard error of the concavity.")
    concave_points_error: Series[float] = _raw("Standard error of the concave points.")
    symmetry_error: Series[float] = _raw("Standard error of the symmetry.")
    fractal_dimension_error: Series[float] = _raw("Standard error of the fractal dimension.")
    worst_radius: Series[float] = _raw("Mean of the three largest radii.")
    worst_texture: Series[float] = _raw("Mean of the three largest textures.")
    worst_perimeter: Series[float] = _raw("Mean of the three largest perimeters.")
    worst_area: Series[float] = _raw("Mean of the three largest areas.")
    worst_smoothness: Series[float] = _raw("Mean of the three largest smoothness values.")
    worst_compactness: Series[float] = _raw("Mean of the three largest compactness values.")
    worst_concavity: Series[float] = _raw("Mean of the three largest concavities.")
    worst_concave_points: Series[float] = _raw("Mean of the three largest concave-point counts.")
    worst_symmetry: Series[float] = _raw("Mean of the three largest symmetry values.")
    worst_fractal_dimension: Series[float] = _raw("Mean of the three largest fractal dimensions.")
    diagnosis_benign: Series[int] = pa.Field(nullable=True, description="Label: 1 benign, 0 malignant.")

    class Config:
        strict = True  # extra columns are a schema change: reject, never drop silently
        coerce = True


# Why each bound holds, whatever the scanner or the lab:
# * sizes (radius, perimeter, area) of an outlined nucleus are strictly positive;
# * texture is a standard deviation, smoothness and symmetry are differences of lengths taken as
#   magnitudes, and every ``*_error`` is a standard error: none can be negative;
# * compactness is scaled so that a circle scores 0 and, by the isoperimetric inequality, no outline
#   is more compact than a circle, so it is never negative;
# * concavity and concave points are 0 for a convex outline and grow with its dents;
# * a fractal dimension of a plane curve lies between 1 and 2, and the data stores it minus 1.
# No upper bounds beyond that: they would be guesses about scanners, which the GX suite's
# distribution checks cover at the batch level instead.
_POSITIVE = {"gt": 0}
_NON_NEGATIVE = {"ge": 0}
_UNIT_INTERVAL = {"ge": 0, "le": 1}


class BreastCancerSample(BreastCancerRaw):
    """A validated sample, fit to train on."""

    sample_id: Series[int] = pa.Field(ge=0, unique=True)
    mean_radius: Series[float] = pa.Field(**_POSITIVE)
    mean_texture: Series[float] = pa.Field(**_NON_NEGATIVE)
    mean_perimeter: Series[float] = pa.Field(**_POSITIVE)
    mean_area: Series[float] = pa.Field(**_POSITIVE)
    mean_smoothness: Series[float] = pa.Field(**_NON_NEGATIVE)
    mean_compactness: Series[float] = pa.Field(**_NON_NEGATIVE)
    mean_concavity: Series[float] = pa.Field(**_NON_NEGATIVE)
    mean_concave_points: Series[float] = pa.Field(**_NON_NEGATIVE)
    mean_symmetry: Series[float] = pa.Field(**_NON_NEGATIVE)
    mean_fractal_dimension: Series[float] = pa.Field(**_UNIT_INTERVAL)
    radius_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    texture_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    perimeter_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    area_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    smoothness_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    compactness_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    concavity_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    concave_points_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    symmetry_error: Series[float] = pa.Field(**_NON_NEGATIVE)
    fractal_dimension_error: Series[float] = pa.Field(**_UNIT_INTERVAL)
    worst_radius: Series[float] = pa.Field(**_POSITIVE)
    worst_texture: Series[float] = pa.Field(**_NON_NEGATIVE)
    worst_perimeter: Series[float] = pa.Field(**_POSITIVE)
    worst_area: Series[float] = pa.Field(**_POSITIVE)
    worst_smoothness: Series[float] = pa.Field(**_NON_NEGATIVE)
    worst_compactness: Series[float] = pa.Field(**_NON_NEGATIVE)
    worst_concavity: Series[float] = pa.Field(**_NON_NEGATIVE)
    worst_concave_points: Series[float] = pa.Field(**_NON_NEGATIVE)
    worst_symmetry: Series[float] = pa.Field(**_NON_NEGATIVE)
    worst_fractal_dimension: Series[float] = pa.Field(**_UNIT_INTERVAL)
    diagnosis_benign: Series[int] = pa.Field(isin=[0, 1])

    @pa.dataframe_check(error="worst_<measurement> must not be below mean_<measurement>")
    @classmethod
    def worst_not_below_mean(cls, frame: pd.DataFrame) -> pd.Series:
        # "worst" is the mean of the three largest per-nucleus values, so it can never be below
        # the mean over all nuclei; a row where it is has its columns swapped or misaligned.
        ok = pd.Series(True, index=frame.index)
        for name in MEASUREMENTS:
            ok &= frame[f"worst_{name}"] >= frame[f"mean_{name}"]
        return ok


def breast_cancer_expectation_suite() -> gx.ExpectationSuite:
    """Dataset-level expectations for a breast cancer batch (Great Expectations 1.x).

    Row-level rules are pandera's (``BreastCancerSample``); these check the batch as a whole. The
    bands come from the 569 samples scikit-learn ships and from the per-class means, so any mix of
    benign and malignant cases passes while unit or column mix-ups do not.

    Returns:
        A new suite named ``breast-cancer``.
    """
    import great_expectations as gx

    expect = gx.expectations
    expectations = [
        # An empty batch is a failed export; above a million images the source is not a
        # diagnostic cohort (the reference set has 569) but something else entirely.
        expect.ExpectTableRowCountToBeBetween(min_value=1, max_value=1_000_000),
    ]
    # More than 1% missing in a column means the export lost or renamed it; single missing values
    # are pandera's to reject row by row.
    expectations += [
        expect.ExpectColumnValuesToNotBeNull(column=column, mostly=0.99)
        for column in (KEY_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN)
    ]
    expectations += [
        # Class balance: the reference set is 63% benign. A batch of one class only (between 10%
        # and 95% benign is required) was selected on its label and would teach nothing.
        expect.ExpectColumnMeanToBeBetween(column=TARGET_COLUMN, min_value=0.1, max_value=0.95),
        # Mean radius averages 12.1 for benign and 17.5 for malignant cases, so any class mix lies
        # in 10-20; outside it the values are in another unit (microns vs pixels) or misaligned.
        expect.ExpectColumnMeanToBeBetween(column="mean_radius", min_value=10, max_value=20),
        # Mean area averages about 460 (benign) and 980 (malignant); 300-1,300 allows any class
        # mix and catches areas computed in another unit or columns swapped with the perimeter.
        expect.ExpectColumnMeanToBeBetween(column="mean_area", min_value=300, max_value=1_300),
        # The fractal dimension minus 1 averages 0.063 in every class; a mean outside 0.03-0.12 is
        # the dimension stored without subtracting 1 (about 1.06), or another column.
        expect.ExpectColumnMeanToBeBetween(column="mean_fractal_dimension", min_value=0.03, max_value=0.12),
        # Each sample is one image: duplicated IDs mean a batch appended to itself (pandera
        # names every duplicated row; this flags the systemic case).
        expect.ExpectColumnProportionOfUniqueValuesToBeBetween(column=KEY_COLUMN, min_value=0.99),
    ]
    return gx.ExpectationSuite(name="breast-cancer", expectations=expectations)
