"""Shared by the ingestion tests: the loans contract in a repository of the test's own."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tasks.datasets import get_dataset


@pytest.fixture
def spec():
    """The loans contract in a repository no other test writes."""
    return dataclasses.replace(get_dataset("loans"), repository=f"ingest-{uuid.uuid4().hex[:10]}")
