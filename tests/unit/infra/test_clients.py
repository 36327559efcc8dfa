"""Connecting to Dask: an unreachable scheduler fails fast with the address named; CUDA needs dask-cuda."""

from __future__ import annotations

import importlib.util
import time

import pytest

from infra.clients import DaskUnavailableError, dask_client
from infra.settings import DaskSettings


def test_unreachable_scheduler_gives_a_clear_error_after_bounded_retries() -> None:
    settings = DaskSettings(scheduler_address="tcp://127.0.0.1:1", connect_timeout_s=1, connect_attempts=2)
    started = time.monotonic()
    with (
        pytest.raises(DaskUnavailableError, match=r"tcp://127\.0\.0\.1:1 unreachable after 2 attempt"),
        dask_client(settings),
    ):
        pass
    assert time.monotonic() - started < 20


@pytest.mark.skipif(importlib.util.find_spec("dask_cuda") is not None, reason="dask-cuda is installed here")
def test_cuda_cluster_without_dask_cuda_says_what_to_install() -> None:
    with (
        pytest.raises(DaskUnavailableError, match="pip install dask-cuda"),
        dask_client(DaskSettings(cuda=True)),
    ):
        pass
