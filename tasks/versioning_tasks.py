"""Prefect ``@task`` adapters over ``tasks.versioning``: one line each, no logic of their own.

Kept out of ``tasks.versioning`` so the CLI and unit tests import the plain functions without Prefect.
Every adapter uses ``NO_CACHE``: these calls change or read state on a lakeFS server, so a cached
result from an earlier run (a commit ID that was never made on this branch) would be wrong, and the
injected client is not hashable anyway.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import versioning

ensure_repository_task = task(versioning.ensure_repository, name="ensure-repository", cache_policy=NO_CACHE)
create_branch_task = task(versioning.create_branch, name="create-branch", cache_policy=NO_CACHE)
write_dataframe_task = task(versioning.write_dataframe, name="write-dataframe", cache_policy=NO_CACHE)
commit_changes_task = task(versioning.commit_changes, name="commit-changes", cache_policy=NO_CACHE)
diff_refs_task = task(versioning.diff_refs, name="diff-refs", cache_policy=NO_CACHE)
merge_branch_task = task(versioning.merge_branch, name="merge-branch", cache_policy=NO_CACHE)
read_dataframe_task = task(versioning.read_dataframe, name="read-dataframe", cache_policy=NO_CACHE)
