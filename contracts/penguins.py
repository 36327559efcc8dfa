"""Contracts of the Palmer Archipelago (Antarctica) penguin data, as shipped in ``palmerpenguins``.

Each row is one adult penguin of the genus *Pygoscelis* (Adelie, Chinstrap or Gentoo), banded and
measured at its nest on one of three islands near Palmer Station between 2007 and 2009 (Gorman,
Williams & Fraser 2014, PLoS ONE 9(3): e90081; data CC0 by the Palmer Station LTER). The task is to
tell the species from the island, the bill, flipper and body measurements, the sex and the year.

Missing values are part of the data, not defects: two birds have no measurements at all and eleven
have no recorded sex. The policy, declared once in the dataset spec, is:

* the four measurements may be null in the validated model too; training imputes a null with the
  training mean of its column (``DatasetSpec.missing``), and the Great Expectations suite refuses a
  batch where more than 5% of a column is missing (a lost column, not an unmeasured bird);
* ``sex`` may be null (not determined); it is one-hot encoded, so a null falls into the unknown
  bucket;
* the key, island, year and species must be present.

Two stages, refined by inheritance:

* ``PenguinRaw``: every column present and coercible to its type; extra columns are rejected
  (``strict``), as for every lockgate dataset.
* ``Penguin``: what may reach ``main``: a known island, species and sex, each measurement inside a
  band wide enough for any adult *Pygoscelis* penguin, one row per ``penguin_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandera.pandas as pa
from pandera.typing import Series

if TYPE_CHECKING:
    # Imported where the suite is built: importing GX takes about 2 s.
    import great_expectations as gx

KEY_COLUMN = "penguin_id"
TARGET_COLUMN = "species"
MEASUREMENT_COLUMNS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
FEATURE_COLUMNS = ("island", *MEASUREMENT_COLUMNS, "sex", "year")
SPECIES = ("Adelie", "Chinstrap", "Gentoo")
ISLANDS = ("Biscoe", "Dream", "Torgersen")
SEXES = ("female", "male")


class PenguinRaw(pa.DataFrameModel):
    """One penguin's record as it arrives: typed, possibly incomplete."""

    penguin_id: Series[int] = pa.Field(nullable=True, description="Unique ID of the bird (file order).")
    island: Series[str] = pa.Field(nullable=True, description="Island of the nest.")
    bill_length_mm: Series[float] = pa.Field(nullable=True, description="Culmen (bill) length (mm).")
    bill_depth_mm: Series[float] = pa.Field(nullable=True, description="Culmen (bill) depth (mm).")
    flipper_length_mm: Series[float] = pa.Field(nullable=True, description="Flipper length (mm).")
    body_mass_g: Series[float] = pa.Field(nullable=True, description="Body mass (g).")
    sex: Series[str] = pa.Field(nullable=True, description="Sex (female, male), from blood samples.")
    year: Series[int] = pa.Field(nullable=True, description="Study season the nest was observed in.")
    species: Series[str] = pa.Field(nullable=True, description="Label: Adelie, Chinstrap or Gentoo.")

    class Config:
        strict = True  # extra columns are a schema change: reject, never drop silently
        coerce = True


# Bands about twice as wide as any adult Pygoscelis penguin: the 344 reference birds measure bills of
# 32-60 mm by 13-22 mm, flippers of 172-231 mm and 2.7-6.3 kg (a Gentoo, the largest, weighs up to
# about 8.5 kg). A value outside is not an unusual bird but another unit (bill in cm, mass in kg) or
# another column; batch-level shifts inside the bands are the GX suite's to judge.
class Penguin(PenguinRaw):
    """A validated penguin record, fit to train on (measurements and sex may be missing)."""

    penguin_id: Series[int] = pa.Field(ge=0, unique=True)
    island: Series[str] = pa.Field(isin=list(ISLANDS))
    bill_length_mm: Series[float] = pa.Field(ge=20, le=100, nullable=True)
    bill_depth_mm: Series[float] = pa.Field(ge=8, le=40, nullable=True)
    flipper_length_mm: Series[float] = pa.Field(ge=100, le=350, nullable=True)
    body_mass_g: Series[float] = pa.Field(ge=1_000, le=12_000, nullable=True)
    sex: Series[str] = pa.Field(isin=list(SEXES), nullable=True)
    # The study's nest observations began in 2007; later seasons are new data, not errors. The upper
    # bound only catches a mistyped year (20009).
    year: Series[int] = pa.Field(ge=2007, le=2100)
    species: Series[str] = pa.Field(isin=list(SPECIES))


def penguin_expectation_suite() -> gx.ExpectationSuite:
    """Dataset-level expectations for a penguin batch (Great Expectations 1.x).

    Row-level rules are pandera's (``Penguin``); these check the batch as a whole. The mean bands
    span the per-species means of the 344 reference birds, so any mix of species passes while a
    column in another unit, or two columns swapped, does not.

    Returns:
        A new suite named ``penguins``.
    """
    import great_expectations as gx

    expect = gx.expectations
    expectations = [
        # An empty batch is a failed export; above a million birds the source is not a colony survey
        # (the reference has 344 and the archipelago a few tens of thousands of nests).
        expect.ExpectTableRowCountToBeBetween(min_value=1, max_value=1_000_000),
    ]
    # Key, island, year and species are never null in a good record (pandera rejects each null row);
    # more than 1% missing means the export lost or renamed the column.
    expectations += [
        expect.ExpectColumnValuesToNotBeNull(column=column, mostly=0.99)
        for column in (KEY_COLUMN, "island", "year", TARGET_COLUMN)
    ]
    # Measurements may be null and are imputed with the training mean, but the reference misses only
    # 0.6% of each (two unmeasured birds): beyond 5% the column was lost, and imputing it would teach
    # the model the training mean instead of the bird.
    expectations += [
        expect.ExpectColumnValuesToNotBeNull(column=column, mostly=0.95) for column in MEASUREMENT_COLUMNS
    ]
    expectations += [
        # Sex is undetermined for 3.2% of the reference birds; beyond 10% the column was lost.
        expect.ExpectColumnValuesToNotBeNull(column="sex", mostly=0.9),
        # Bill length averages 38.8 mm (Adelie), 47.5 (Gentoo) and 48.8 (Chinstrap): any species mix
        # lies in 35-52; a mean outside is centimetres (about 4.4) or another column.
        expect.ExpectColumnMeanToBeBetween(column="bill_length_mm", min_value=35, max_value=52),
        # Bill depth averages 15.0 mm (Gentoo) to 18.4 (Chinstrap); 14-20 allows any mix and catches
        # depth swapped with length (about 44).
        expect.ExpectColumnMeanToBeBetween(column="bill_depth_mm", min_value=14, max_value=20),
        # Flippers average 190 mm (Adelie) to 217 (Gentoo); 180-230 allows any mix and catches
        # centimetres (about 20).
        expect.ExpectColumnMeanToBeBetween(column="flipper_length_mm", min_value=180, max_value=230),
        # Body mass averages 3.7 kg (Adelie, Chinstrap) to 5.1 kg (Gentoo); 3,300-5,500 g allows any
        # mix and catches kilograms (about 4.2) or pounds (about 9).
        expect.ExpectColumnMeanToBeBetween(column="body_mass_g", min_value=3_300, max_value=5_500),
        # A batch of one species was selected on its label and would teach nothing about telling
        # species apart; two or more are required (pandera already refuses unknown species).
        expect.ExpectColumnUniqueValueCountToBeBetween(column=TARGET_COLUMN, min_value=2),
        # Each row is one bird: duplicated IDs mean a batch appended to itself (pandera names every
        # duplicated row; this flags the systemic case).
        expect.ExpectColumnProportionOfUniqueValuesToBeBetween(column=KEY_COLUMN, min_value=0.99),
    ]
    return gx.ExpectationSuite(name="penguins", expectations=expectations)
