"""The key index of a dataset: every key ``main`` holds, kept in lakeFS beside the data it describes, so
a new batch's keys are checked against all earlier batches without scanning them.

The index lives at ``_lockgate/keys/<dataset>/``: ``index.json`` (the key columns, the key kind and
which batch folders under ``data/`` it accounts for) and 64 hash buckets ``keys-NN.npy`` of sorted
int64 keys (the integer key itself, or a hash of the key columns: ``checks.unique_keys``), the same
buckets the batch's own ``KeyLedger`` spills to. An ingest reads the index on its branch (``main`` as
it was when the branch was made), finds the batch's keys already there bucket by bucket, and writes
the grown index in the same commit as the data, so the index reaches ``main`` with the data it
indexes, by the same merge. Two ingests that both grow the index conflict on merge; the later one is
staged again on the new ``main`` (``run.py``), so even concurrent batches cannot both bring one key.

The index is checked against ``main`` before it is trusted: a batch folder on ``main`` it does not
account for (merged by a tool other than lockgate) has its keys read and added; a folder it accounts
for that is gone from ``main`` (a batch removed) or other key columns mean it is rebuilt from
``main``'s data. Update policy: keys are append-only. A batch that brings a key ``main`` already has is
rejected ("unique across batches"); to replace rows, remove their batch folder from ``main`` (on a
branch, merged through the gate) and ingest the corrected rows, and the index follows on the next
ingest.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from infra.errors import ObjectNotFoundError
from tasks import versioning
from tasks.contract_reports import DATA_PREFIX
from tasks.ingestion.checks import EXAMPLES_PER_CHECK, KeyLedger, unique_keys

if TYPE_CHECKING:
    import lakefs

    from tasks.datasets import DatasetSpec

logger = logging.getLogger(__name__)

KEYS_PREFIX = "_lockgate/keys/"
INDEX_FORMAT = 1
BUCKETS = 1 << KeyLedger.BUCKET_BITS
READ_BATCH_ROWS = 250_000
REPEATED_ACROSS_BATCHES = "unique across batches (already on main)"


def index_prefix(dataset: str) -> str:
    return f"{KEYS_PREFIX}{dataset}/"


def bucket_path(dataset: str, bucket: int) -> str:
    return f"{index_prefix(dataset)}keys-{bucket:02d}.npy"


@dataclass
class IndexManifest:
    """``index.json``: what the buckets beside it hold."""

    dataset: str
    key_columns: list[str]
    integer_keys: bool
    batches: list[str] = field(default_factory=list)  # batch folders of main it accounts for
    keys: int = 0
    format: int = INDEX_FORMAT


@dataclass(frozen=True)
class KeyCheck:
    """The outcome for one batch: keys already on main, and the grown index to commit with the data."""

    repeated: int
    examples: list[dict[str, Any]]
    files: list[tuple[Path, str]]  # (local file, object path) of the grown index
    rebuilt: bool
    base_keys: int


def check_against_main(
    spec: DatasetSpec,
    batch: KeyLedger,
    *,
    batch_folder: str,
    branch: str,
    client: lakefs.Client,
    workdir: Path,
) -> KeyCheck:
    """Find the batch's keys (``batch``) that ``branch``'s base already holds; grow the index by them.

    Args:
        spec: The dataset.
        batch: The batch's keys, bucketed.
        batch_folder: The batch's own folder under ``data/`` (not yet written).
        branch: The ingest branch, made from ``main``: the index and data read are ``main``'s then.
        client: lakeFS client.
        workdir: Where the grown buckets are written before upload.
    """
    repository = spec.repository
    manifest = _read_manifest(repository, branch, spec.name, client=client)
    folders = {
        folder
        for folder in versioning.list_folders(repository, ref=branch, prefix=DATA_PREFIX, client=client)
        if folder != batch_folder
    }
    key_columns = list(spec.key_columns)
    rebuild = (
        manifest is None
        or manifest.format != INDEX_FORMAT
        or manifest.key_columns != key_columns
        or not set(manifest.batches) <= folders
    )
    unindexed = sorted(folders if rebuild else folders - set(manifest.batches))
    if rebuild and manifest is not None:
        logger.info("the key index of %s does not match main; rebuilding it from main's data", spec.name)
    scanned = KeyLedger(workdir / "scanned")
    for folder in unindexed:
        _scan_folder(spec, branch, folder, scanned, client=client)
    integer_keys = batch.integer_keys if manifest is None or rebuild else manifest.integer_keys
    repeated, examples, total, base_total = 0, [], 0, 0
    files = []
    workdir.mkdir(parents=True, exist_ok=True)
    for bucket in range(BUCKETS):
        base = scanned.bucket(bucket)
        if not rebuild:
            base = np.union1d(base, _read_bucket(repository, branch, spec.name, bucket, client=client))
        new = batch.bucket(bucket)
        hits = np.intersect1d(new, base, assume_unique=True)
        repeated += len(hits)
        examples.extend(int(key) for key in hits[: EXAMPLES_PER_CHECK - len(examples)])
        grown = np.union1d(base, new)
        base_total += len(base)
        total += len(grown)
        local = workdir / f"keys-{bucket:02d}.npy"
        np.save(local, grown.astype(np.int64), allow_pickle=False)
        files.append((local, bucket_path(spec.name, bucket)))
    grown_manifest = IndexManifest(
        dataset=spec.name,
        key_columns=key_columns,
        integer_keys=integer_keys and batch.integer_keys,
        batches=sorted(folders | {batch_folder}),
        keys=total,
    )
    manifest_file = workdir / "index.json"
    manifest_file.write_text(json.dumps(asdict(grown_manifest), indent=2))
    files.append((manifest_file, f"{index_prefix(spec.name)}index.json"))
    name = "value" if grown_manifest.integer_keys and len(key_columns) == 1 else "key_hash"
    label = key_columns[0] if name == "value" else name
    return KeyCheck(
        repeated=repeated,
        examples=[{name: key, "key": {label: key}} for key in examples],
        files=files,
        rebuilt=rebuild,
        base_keys=base_total,
    )


def _read_manifest(repository: str, ref: str, dataset: str, *, client: lakefs.Client) -> IndexManifest | None:
    try:
        payload = versioning.read_object(
            repository, ref=ref, path=f"{index_prefix(dataset)}index.json", client=client
        )
    except ObjectNotFoundError:
        return None
    try:
        return IndexManifest(**json.loads(payload))
    except (ValueError, TypeError):
        logger.warning("the key index manifest of %s is unreadable; rebuilding it", dataset)
        return None


def _read_bucket(
    repository: str, ref: str, dataset: str, bucket: int, *, client: lakefs.Client
) -> np.ndarray:
    try:
        payload = versioning.read_object(
            repository, ref=ref, path=bucket_path(dataset, bucket), client=client
        )
    except ObjectNotFoundError:
        return np.empty(0, dtype=np.int64)
    return np.load(io.BytesIO(payload), allow_pickle=False).astype(np.int64, copy=False)


def _scan_folder(
    spec: DatasetSpec, ref: str, folder: str, ledger: KeyLedger, *, client: lakefs.Client
) -> None:
    """Add the keys of one batch folder on ``ref`` to ``ledger`` (only the key columns are read)."""
    for path in versioning.list_objects(
        spec.repository, ref=ref, prefix=folder, suffix=".parquet", client=client
    ):
        with versioning.open_object(spec.repository, ref=ref, path=path, client=client) as handle:
            parquet = pq.ParquetFile(handle)
            if not set(spec.key_columns) <= set(parquet.schema_arrow.names):
                return  # another dataset's batch in a shared repository: not this index's keys
            for part in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=list(spec.key_columns)):
                ledger.add(unique_keys(part.to_pandas(), spec.key_columns))
