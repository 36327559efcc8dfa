"""The key index of a dataset: every key ``main`` holds, kept in lakeFS beside the data it describes, so
a new batch's keys are checked against all earlier batches without scanning them.

The index lives at ``_lockgate/keys/<dataset>/``: ``index.json`` (the key columns, the key kind,
the layout and which batch folders under ``data/`` it accounts for) and the keys, sorted int64 (the
integer key itself, or a hash of the key columns: ``checks.unique_keys``): up to a million keys in
one ``keys.npy`` (8 MB), beyond that in 64 hash buckets ``keys-NN.npy``, the same buckets the batch's
own ``KeyLedger`` spills to, so memory stays bounded by one bucket however large the dataset grows.
An ingest reads the index on its branch (``main`` as it was when the branch was made), finds the
batch's keys already there bucket by bucket, and writes the grown index in the same commit as the
data, so the index reaches ``main`` with the data it indexes, by the same merge. Two ingests that
both grow the index conflict on merge; the later one is staged again on the new ``main``
(``run.py``), so even concurrent batches cannot both bring one key.

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
ONE_FILE_KEYS = 1_000_000  # up to this many keys the index is one object, not 64
REPEATED_ACROSS_BATCHES = "unique across batches (already on main)"


def index_prefix(dataset: str) -> str:
    return f"{KEYS_PREFIX}{dataset}/"


def bucket_path(dataset: str, bucket: int) -> str:
    return f"{index_prefix(dataset)}keys-{bucket:02d}.npy"


def one_file_path(dataset: str) -> str:
    return f"{index_prefix(dataset)}keys.npy"


@dataclass
class IndexManifest:
    """``index.json``: what the buckets beside it hold."""

    dataset: str
    key_columns: list[str]
    integer_keys: bool
    batches: list[str] = field(default_factory=list)  # batch folders of main it accounts for
    keys: int = 0
    buckets: int = BUCKETS  # 1: all keys in keys.npy; 64: keys-NN.npy
    format: int = INDEX_FORMAT


@dataclass(frozen=True)
class KeyCheck:
    """The outcome for one batch: keys already on main, and the grown index to commit with the data."""

    repeated: int
    examples: list[dict[str, Any]]
    files: list[tuple[Path, str]]  # (local file, object path) of the grown index
    stale: list[str]  # index objects of another layout, to remove in the same commit
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
    stored = _StoredKeys(repository, branch, spec.name, None if rebuild else manifest, client=client)
    repeated, examples, total, base_total = 0, [], 0, 0
    workdir.mkdir(parents=True, exist_ok=True)
    grown_buckets: list[np.ndarray] = []  # held while the grown index still fits in one file
    files: list[tuple[Path, str]] = []
    for bucket in range(BUCKETS):
        base = np.union1d(scanned.bucket(bucket), stored.bucket(bucket))
        new = batch.bucket(bucket)
        hits = np.intersect1d(new, base, assume_unique=True)
        repeated += len(hits)
        examples.extend(int(key) for key in hits[: EXAMPLES_PER_CHECK - len(examples)])
        grown = np.union1d(base, new).astype(np.int64, copy=False)
        base_total += len(base)
        total += len(grown)
        grown_buckets.append(grown)
        if total > ONE_FILE_KEYS:  # too many for one object: every bucket gets its own from here on
            for number, keys in enumerate(grown_buckets, start=bucket + 1 - len(grown_buckets)):
                files.append(_save(workdir / f"keys-{number:02d}.npy", keys, bucket_path(spec.name, number)))
            grown_buckets = []
    if grown_buckets:  # it never outgrew one file
        everything = np.sort(np.concatenate(grown_buckets))
        files.append(_save(workdir / "keys.npy", everything, one_file_path(spec.name)))
    layout = BUCKETS if len(files) > 1 else 1
    grown_manifest = IndexManifest(
        dataset=spec.name,
        key_columns=key_columns,
        integer_keys=integer_keys and batch.integer_keys,
        batches=sorted(folders | {batch_folder}),
        keys=total,
        buckets=layout,
    )
    manifest_file = workdir / "index.json"
    manifest_file.write_text(json.dumps(asdict(grown_manifest), indent=2))
    files.append((manifest_file, f"{index_prefix(spec.name)}index.json"))
    name = "value" if grown_manifest.integer_keys and len(key_columns) == 1 else "key_hash"
    label = key_columns[0] if name == "value" else name
    written = {remote for _, remote in files}
    stale = [
        path
        for path in versioning.list_objects(
            repository, ref=branch, prefix=index_prefix(spec.name), client=client
        )
        if path not in written
    ]
    return KeyCheck(
        repeated=repeated,
        examples=[{name: key, "key": {label: key}} for key in examples],
        files=files,
        stale=stale,
        rebuilt=rebuild,
        base_keys=base_total,
    )


def _save(local: Path, keys: np.ndarray, remote: str) -> tuple[Path, str]:
    np.save(local, keys, allow_pickle=False)
    return local, remote


class _StoredKeys:
    """The keys of the index on ``ref``, bucket by bucket, whichever layout it was written in."""

    def __init__(
        self,
        repository: str,
        ref: str,
        dataset: str,
        manifest: IndexManifest | None,
        *,
        client: lakefs.Client,
    ) -> None:
        self.repository, self.ref, self.dataset, self.client = repository, ref, dataset, client
        self.manifest = manifest
        self.split: list[np.ndarray] | None = None
        if manifest is not None and manifest.buckets == 1:
            keys = self._read(one_file_path(dataset))
            spread = KeyLedger.bucket_of(keys)
            self.split = [keys[spread == bucket] for bucket in range(BUCKETS)]

    def bucket(self, bucket: int) -> np.ndarray:
        if self.manifest is None:
            return np.empty(0, dtype=np.int64)
        if self.split is not None:
            return self.split[bucket]
        return self._read(bucket_path(self.dataset, bucket))

    def _read(self, path: str) -> np.ndarray:
        try:
            payload = versioning.read_object(self.repository, ref=self.ref, path=path, client=self.client)
        except ObjectNotFoundError:
            return np.empty(0, dtype=np.int64)
        return np.load(io.BytesIO(payload), allow_pickle=False).astype(np.int64, copy=False)


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
