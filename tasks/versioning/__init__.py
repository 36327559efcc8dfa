"""Versioned storage over the lakeFS API: the one way lockgate reads and writes lakeFS.

Plain functions over the official ``lakefs`` SDK. The client is always passed in (``client=``), so the
same code talks to the embedded server or to a real lakeFS. SDK exceptions are translated into
lockgate's own (``infra.errors``) with the repository, ref and path in the message; an endpoint that
does not answer is a ``LakeFSUnavailableError``, refused credentials a ``ConfigurationError``.

======================================  =================================================================
``tasks.versioning.repositories``       ensure a repository exists, the namespace the server suggests
``tasks.versioning.refs``               branches, commits, tags, diffs, merges
``tasks.versioning.objects``            write (Parquet, files, bytes), read, open, list objects
``tasks.versioning.inspection``         what a ref holds (stats, Parquet row counts), URIs, downloads
``tasks.versioning.translate``          lakeFS answers as lockgate errors
======================================  =================================================================
"""

from __future__ import annotations

from tasks.versioning.inspection import (
    ObjectStat,
    RefContents,
    download_folder,
    object_uri,
    parquet_row_count,
    parse_uri,
    ref_contents,
    stat_objects,
)
from tasks.versioning.objects import (
    PARQUET_CONTENT_TYPE,
    check_connection,
    delete_objects,
    list_folders,
    list_objects,
    object_exists,
    object_url,
    open_object,
    read_dataframe,
    read_object,
    read_parquet_objects,
    server_version_context,
    upload_file,
    validate_metadata,
    write_bytes,
    write_dataframe,
)
from tasks.versioning.refs import (
    MERGE_STRATEGIES,
    BranchHead,
    Change,
    commit_changes,
    commit_time,
    create_branch,
    create_tag,
    delete_branch,
    diff_refs,
    get_commit,
    has_uncommitted,
    head_commit,
    list_branches,
    list_tags,
    log_commits,
    merge_base,
    merge_branch,
    resolve_ref,
)
from tasks.versioning.repositories import (
    default_branch,
    default_storage_namespace,
    ensure_default_repository,
    ensure_repository,
    gc_rules,
    set_gc_rules,
)

__all__ = [
    "MERGE_STRATEGIES",
    "PARQUET_CONTENT_TYPE",
    "BranchHead",
    "Change",
    "ObjectStat",
    "RefContents",
    "check_connection",
    "delete_objects",
    "commit_changes",
    "commit_time",
    "create_branch",
    "create_tag",
    "default_branch",
    "default_storage_namespace",
    "delete_branch",
    "diff_refs",
    "download_folder",
    "ensure_default_repository",
    "ensure_repository",
    "gc_rules",
    "set_gc_rules",
    "get_commit",
    "has_uncommitted",
    "head_commit",
    "list_branches",
    "list_folders",
    "list_objects",
    "list_tags",
    "log_commits",
    "merge_base",
    "merge_branch",
    "object_exists",
    "object_uri",
    "object_url",
    "open_object",
    "parquet_row_count",
    "parse_uri",
    "read_dataframe",
    "read_object",
    "read_parquet_objects",
    "server_version_context",
    "ref_contents",
    "resolve_ref",
    "stat_objects",
    "upload_file",
    "validate_metadata",
    "write_bytes",
    "write_dataframe",
]
