"""The training input pipeline on real ETL output: every row once per epoch, exactly x / 255, a seeded order
that caching does not change, several files read in parallel, and rows that contradict the manifest refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.contracts.tasks import task_targets
from jobs.data.reader import Dataset, DatasetError, open_dataset, to_float
from jobs.training.inputs import evaluation_dataset, training_dataset
from jobs.training.randomness import EpochSeeds, epoch_seed

EVERYTHING = 2**40  # a cache budget every split fits in


def in_files(source: Path, target: Path, files: int) -> Path:
    """The same dataset with its train split cut into several Parquet files, as a large ETL writes it."""
    shutil.copytree(source, target)
    train = target / "data" / "split=train"
    table = pq.read_table(next(train.glob("*.parquet")))
    for part in train.glob("*.parquet"):
        part.unlink()
    step = -(-table.num_rows // files)
    for index in range(files):
        pq.write_table(table.slice(index * step, step), train / f"part-{index:05d}.parquet", row_group_size=7)
    return target


@pytest.fixture(scope="module")
def three_files(small_dataset, tmp_path_factory) -> Path:
    return in_files(small_dataset, tmp_path_factory.mktemp("inputs") / "three-files", 3)


def epochs(data, count: int, seeds: EpochSeeds | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` passes over a dataset, each as (all images, all targets) in the order they came; with
    ``seeds``, each pass reseeded as Keras' fit does through the callback."""
    out = []
    for epoch in range(count):
        if seeds is not None:
            seeds.shuffle_seed.assign(epoch_seed(seeds.seed, 0, epoch))
        batches = [(x.numpy(), y.numpy()) for x, y in data]
        out.append((np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])))
    return out


def test_each_epoch_holds_every_row_once_as_x_over_255(three_files):
    """Three files interleaved: no row lost or repeated, pixels exactly the reader's x / 255, task targets."""
    ds = open_dataset(three_files)
    train = ds.load("train", columns=("image", "label_index"))
    targets_of = dict(
        zip((i.tobytes() for i in train["image"]), task_targets("binary", train["label_index"]), strict=True)
    )
    seeds = EpochSeeds(3)
    data = training_dataset(ds, "binary", 8, seeds, shuffle_buffer=64, cache_bytes=0)
    for images, targets in epochs(data, 2, seeds):
        pixels = np.rint(images * 255).astype(np.uint8)
        np.testing.assert_array_equal(images, to_float(pixels))
        assert sorted(p.tobytes() for p in pixels) == sorted(i.tobytes() for i in train["image"])
        assert targets.tolist() == [targets_of[p.tobytes()] for p in pixels]
    ((validation, _),) = epochs(evaluation_dataset(ds, "validation", "binary", 8), 1)
    np.testing.assert_array_equal(validation, to_float(ds.load("validation", columns=("image",))["image"]))


def test_cached_and_streamed_runs_see_the_same_seeded_order(three_files):
    """The cache sits before the shuffle: same seed, same batches; each epoch reshuffled; the seed matters."""
    ds = open_dataset(three_files)

    def run(seed: int, cache_bytes: int) -> list[np.ndarray]:
        seeds = EpochSeeds(seed)
        data = training_dataset(ds, "multiclass", 8, seeds, shuffle_buffer=32, cache_bytes=cache_bytes)
        return [images for images, _ in epochs(data, 2, seeds)]

    streamed, cached = run(5, 0), run(5, EVERYTHING)
    for a, b in zip(streamed, cached, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(streamed[0], streamed[1])
    assert not np.array_equal(run(6, EVERYTHING)[0], cached[0])


def test_rows_that_contradict_the_manifest_are_refused_naming_the_file(small_dataset, tmp_path):
    target = shutil.copytree(small_dataset, tmp_path / "wrong-shape")
    manifest = json.loads((target / "manifest.json").read_text())
    height, width, channels = manifest["image_shape"]
    manifest["image_shape"] = [height, width // 2, channels]
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"split=train/part-.*\.parquet: field 'image' holds rows of"):
        next(open_dataset(target).batches("train"))


def test_a_split_that_fits_is_read_from_its_files_once(three_files, monkeypatch):
    """Keras fit reads each epoch to the end, so the cache is kept: three epochs, one pass over the files."""
    import keras

    reads = []
    read = Dataset.fragment_batches

    def counted(self, fragment, *args):
        reads.append(fragment.path)
        yield from read(self, fragment, *args)

    monkeypatch.setattr(Dataset, "fragment_batches", counted)
    ds = open_dataset(three_files)
    inputs = keras.Input(ds.image_shape)
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    for cache_bytes, passes in ((EVERYTHING, 1), (0, 3)):
        reads.clear()
        seeds = EpochSeeds(1)
        data = training_dataset(ds, "multiclass", 8, seeds, 32, cache_bytes)
        model.fit(data, epochs=3, verbose=0, callbacks=[seeds])
        assert sorted(reads) == sorted([f.path for f in ds.fragments("train")] * passes)
