"""Reads the ETL's Parquet dataset (local path or s3://) for training and evaluation. No TensorFlow here.

Pixels are stored as uint8; ``to_float`` is the paper's [0,1] scaling (x / 255), done at read time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from jobs.etl.labels import CLASSES

META_COLUMNS = ("label", "patient_id", "source", "original_path")
_OFFSET_TYPES = {pa.binary(): np.int32, pa.large_binary(): np.int64}


class DatasetError(ValueError):
    """The dataset folder is not an ETL output, or lacks what a step needs."""


_RERUN = (
    "the dataset is damaged or was written by two runs at once: run the ETL again (`cxr run ... --force`)"
)


@dataclass(frozen=True)
class Dataset:
    root: str
    manifest: dict

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest["image_shape"])  # type: ignore[return-value]

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def count(self, split: str) -> int:
        return int(self.manifest["counts"]["by_split"].get(split, 0))

    def parquet(self, split: str) -> pads.Dataset:
        fs, path = _filesystem(f"{self.root}/data/split={split}")
        try:
            return pads.dataset(path, filesystem=fs, format="parquet")
        except (FileNotFoundError, OSError) as exc:
            raise DatasetError(f"{self.root}: no '{split}' split in data/ ({exc})") from None

    def verify(self, splits: tuple[str, ...] | None = None) -> None:
        """Checks the Parquet files and row counts against the manifest before any epoch starts: a
        missing, extra (a second writer's) or truncated file fails here, not inside training."""
        by_split = self.manifest["counts"]["by_split"]
        listed = self.manifest.get("files")  # manifests before 2026-11 list no files: counts only
        data_path = _filesystem(f"{self.root}/data")[1]
        for split in splits or tuple(by_split):
            if self.count(split) == 0:
                continue
            prefix = f"split={split}/"
            try:
                parquet = self.parquet(split)
                rows = parquet.count_rows()
            except (OSError, ValueError) as exc:
                raise DatasetError(
                    f"{self.root}: the '{split}' split cannot be read ({exc}); {_RERUN}"
                ) from None
            problems = []
            if listed is not None:
                found = {f[len(data_path) + 1 :] for f in parquet.files}
                expected = {name for name in listed if name.startswith(prefix)}
                if found - expected:
                    problems.append(f"file(s) not in the manifest: {sorted(found - expected)}")
                if expected - found:
                    problems.append(f"file(s) missing: {sorted(expected - found)}")
            if rows != self.count(split):
                problems.append(f"{rows} rows where manifest.json counts {self.count(split)}")
            if problems:
                raise DatasetError(
                    f"{self.root}/data/{prefix} does not match manifest.json: {'; '.join(problems)}; {_RERUN}"
                )

    def fragments(self, split: str) -> list[pads.Fragment]:
        """The split's Parquet files in path order: the units the training input reads in parallel."""
        return sorted(self.parquet(split).get_fragments(), key=lambda fragment: fragment.path)

    def fragment_batches(
        self, fragment: pads.Fragment, columns: tuple[str, ...], batch_rows: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """One file's rows in record batches; images as one zero-copy uint8 (rows, H, W, C) array each."""
        for batch in fragment.to_batches(columns=list(columns), batch_size=batch_rows):
            out: dict[str, np.ndarray] = {}
            for name in columns:
                column = batch.column(name)
                if name == "image":
                    out[name] = _image_array(column, self.image_shape, fragment.path)
                else:
                    out[name] = column.to_numpy(zero_copy_only=False)
            yield out

    def batches(
        self, split: str, columns: tuple[str, ...] = ("image", "label_index"), batch_rows: int = 64
    ) -> Iterator[dict[str, np.ndarray]]:
        """Streams a split in record batches; memory stays at one batch whatever the dataset's size."""
        for fragment in self.fragments(split):
            yield from self.fragment_batches(fragment, columns, batch_rows)

    def load(
        self, split: str, columns: tuple[str, ...] = ("image", "label_index") + META_COLUMNS
    ) -> dict[str, np.ndarray]:
        """A whole split in memory (evaluation, benchmarks): uint8 images plus metadata columns."""
        parts = list(self.batches(split, columns=columns, batch_rows=256))
        if not parts:
            raise DatasetError(f"{self.root}: the '{split}' split is empty")
        return {name: np.concatenate([p[name] for p in parts]) for name in columns}


def to_float(images: np.ndarray) -> np.ndarray:
    """The paper's scaling: uint8 -> float32 in [0, 1]."""
    return images.astype(np.float32) / np.float32(255.0)


def _image_array(column: pa.Array, shape: tuple[int, int, int], path: str) -> np.ndarray:
    """The pixel bytes of a binary column viewed as (rows, H, W, C), without a copy per row.

    Every row must hold exactly H*W*C bytes (the manifest's image shape); the file is named otherwise.
    """
    row_bytes = int(np.prod(shape))
    offsets = np.frombuffer(column.buffers()[1], dtype=_OFFSET_TYPES[column.type])
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    sizes = np.unique(np.diff(offsets))
    if len(column) and (len(sizes) != 1 or sizes[0] != row_bytes):
        raise DatasetError(
            f"{path}: field 'image' holds rows of {sorted(sizes.tolist())} bytes, but manifest.json's "
            f"image_shape {list(shape)} needs {row_bytes}; the data and manifest come from different "
            "ETL runs: rerun `cxr etl`"
        )
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
    return data[offsets[0] : offsets[0] + len(column) * row_bytes].reshape(len(column), *shape)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if uri.startswith("s3://"):
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def open_dataset(root: str | Path) -> Dataset:
    """Opens an ETL output folder; the manifest is required (it is written last, so it marks completion)."""
    root = str(root).rstrip("/")
    fs, path = _filesystem(f"{root}/manifest.json")
    try:
        with fs.open_input_stream(path) as stream:
            manifest = json.loads(stream.read().decode("utf-8"))
    except (FileNotFoundError, OSError):
        raise DatasetError(
            f"{root}: no manifest.json; run `cxr etl --output {root}` first (the manifest is "
            "written last, so its absence also means an unfinished ETL)"
        ) from None
    if manifest.get("classes") != list(CLASSES):
        raise DatasetError(
            f"{root}/manifest.json: field 'classes' is {manifest.get('classes')}, expected {list(CLASSES)}"
        )
    return Dataset(root=root, manifest=manifest)
