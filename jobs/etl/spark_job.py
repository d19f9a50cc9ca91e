"""The ETL job. ``spark-submit spark_job.py ARGS`` on EMR; ``cxr etl ARGS`` locally.

Driver: read metadata, select, cap (small, pure Python). Executors: read, hash, decode, resize.
Driver again: rejections, duplicates, splits. Executors: write Parquet. Driver: manifest.json last,
so a manifest means a complete dataset.
"""

import json
import os
import sys
import time
from collections import Counter

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql.types import BinaryType, DoubleType, IntegerType, StringType, StructField, StructType

from jobs.etl import blobs, imaging, manifest, output_guard, selection, sources
from jobs.etl.batching import balanced_batches
from jobs.etl.errors import EtlError
from jobs.etl.hadoop import HadoopFiles
from jobs.etl.labels import label_index
from jobs.etl.settings import parse_settings, settings_record

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

SCHEMA = StructType(
    [
        StructField("image", BinaryType(), False),
        StructField("height", IntegerType(), False),
        StructField("width", IntegerType(), False),
        StructField("label", StringType(), False),
        StructField("label_index", IntegerType(), False),
        StructField("patient_id", StringType(), False),
        StructField("source", StringType(), False),
        StructField("original_path", StringType(), False),
        StructField("sha256", StringType(), False),
        StructField("age", DoubleType(), True),
        StructField("split", StringType(), False),
    ]
)

METADATA_FILES = {"cohen": "metadata.csv", "nih": "Data_Entry_2017.csv"}
CLASSES_OF_KIND = {"cohen": ("COVID-19",), "nih": ("Normal", "Pneumonia")}


def log(message, started):
    """A progress line with the seconds since the job started, so that slow phases show."""
    print(
        "[cxr etl {} +{:.1f}s] {}".format(time.strftime("%H:%M:%S"), time.time() - started, message),
        flush=True,
    )


def read_sources(files, settings):
    """All candidates of all sources; also the metadata digests and the classes each source promises."""
    rules = sources.Rules(
        settings.view,
        settings.modality,
        settings.covid_finding,
        settings.pneumonia_finding,
        settings.normal_finding,
    )
    result = sources.SourceResult()
    digests = {}
    expected = set()
    for kind, root in settings.source:
        listing = files.list_files(root)
        if listing is None:
            raise EtlError(
                "--source {}={}: no such folder; point it at the dataset's root".format(kind, root)
            )
        try:
            blobs.check_readable(files.qualify(root))
        except ValueError as exc:
            raise EtlError("--source {}={}: {}".format(kind, root, exc)) from None
        images = {p: q for p, q in listing.items() if sources.is_image(p)}
        if kind == "folders":
            part = sources.read_folders(root, images)
            expected.update(c["label"] for c in part.candidates)
        else:
            uri = root + "/" + METADATA_FILES[kind]
            data = files.read_bytes(uri) if uri in listing else None
            if data is None:
                raise EtlError(
                    "{}: metadata file not found; a {} source needs {} in its root folder".format(
                        uri, kind, METADATA_FILES[kind]
                    )
                )
            digests[uri] = imaging.content_digest(data)
            text = sources.decode_text(data, uri)
            if kind == "cohen":
                part = sources.read_cohen(text, uri, root, images, rules)
            else:
                part = sources.read_nih(text, uri, images, rules)
            expected.update(CLASSES_OF_KIND[kind])
        for c in part.candidates:
            c["qualified"], c["bytes"] = images[c["path"]]
        result.candidates.extend(part.candidates)
        result.rejections.extend(part.rejections)
        result.exclusions.update(part.exclusions)
    return result, digests, expected


def unique_paths(candidates, rejections):
    seen = set()
    kept = []
    for c in candidates:
        if c["path"] in seen:
            rejections.append(
                {
                    "path": c["path"],
                    "source": c["source"],
                    "reason": "listed twice: the metadata names this file more than once",
                }
            )
        else:
            seen.add(c["path"])
            kept.append(c)
    return kept


def decode_batches(size):
    """Executor side: batches of URIs -> (URI, sha256 or None, reason or None, pixels or None)."""

    def run(batches):
        imaging.use_one_thread()
        for batch in batches:
            for uri in batch:
                data = blobs.read_blob(uri)
                if data is None:
                    yield uri, None, "missing file: could not be read", None
                    continue
                digest = imaging.content_digest(data)
                try:
                    yield uri, digest, None, imaging.decode_and_resize(data, size).tobytes()
                except imaging.ImageRejected as exc:
                    yield uri, digest, str(exc), None
                except Exception as exc:  # noqa: BLE001 - a decoder crash is a rejection, not a lost job
                    yield uri, digest, "corrupt image: {}".format(exc), None

    return run


def check_class_sizes(rows, expected, minimum):
    counts = Counter(r["label"] for r in rows)
    short = [
        "{} has {}".format(label, counts.get(label, 0))
        for label in sorted(expected)
        if counts.get(label, 0) < minimum
    ]
    if short:
        raise EtlError(
            "too few usable images: {} (--min-images-per-class={}); add images to the source "
            "folders, relax --view/--cap/--adults-only, or lower the minimum".format(
                "; ".join(short), minimum
            )
        )
    if len(counts) < 2:
        raise EtlError(
            "only one class ({}) was found; a classifier needs at least two: add another --source".format(
                ", ".join(counts) or "none"
            )
        )


def run(spark, settings):
    """Runs the ETL and returns the manifest it wrote."""
    started = time.time()
    files = HadoopFiles(spark)
    output = settings.output.rstrip("/")
    output_guard.check_apart(
        files.qualify(output),
        [("--source {}={}".format(kind, root), files.qualify(root)) for kind, root in settings.source],
    )
    output_guard.claim(files, output)
    files.delete(output + "/manifest.json")
    found, metadata_digests, expected = read_sources(files, settings)
    rejections = found.rejections
    candidates = unique_paths(found.candidates, rejections)
    inputs = len(candidates)
    log(
        "{} images selected by the rules from {} source(s); {} rows excluded by the rules".format(
            inputs, len(settings.source), sum(found.exclusions.values())
        ),
        started,
    )
    excluded = Counter(found.exclusions)
    if settings.adults_only:
        candidates, dropped = selection.drop_children(candidates)
        excluded["age under 18"] += dropped
    capped = selection.apply_caps(candidates, dict(settings.cap), settings.seed)
    if len(capped) < len(candidates):
        excluded["over the per-class cap"] += len(candidates) - len(capped)
    by_qualified = {c["qualified"]: c for c in capped}

    sc = spark.sparkContext
    batches = balanced_batches(
        {q: c["bytes"] for q, c in by_qualified.items()}, settings.partitions or 2 * sc.defaultParallelism
    )
    log(
        "decoding {} images at {}x{} in {} tasks".format(
            len(capped), settings.image_size, settings.image_size, len(batches)
        ),
        started,
    )
    # Only URIs travel to the executors, which read the bytes themselves: no shuffle of raw files.
    decoded = (
        sc.parallelize(batches, max(1, len(batches)))
        .mapPartitions(decode_batches(settings.image_size))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    outcomes = decoded.map(lambda t: (t[0], t[1], t[2])).collect()

    digests = {}
    for qualified, digest, reason in outcomes:
        c = by_qualified[qualified]
        if reason:
            rejections.append({"path": c["path"], "source": c["source"], "reason": reason})
        else:
            digests[c["path"]] = digest
    by_path = {c["path"]: c for c in capped}
    for duplicate, kept in sorted(selection.find_duplicates(digests).items()):
        rejections.append(
            {
                "path": duplicate,
                "source": by_path[duplicate]["source"],
                "reason": "duplicate: same bytes as {}".format(kept),
            }
        )
        del digests[duplicate]

    kept = [c for c in capped if c["path"] in digests]
    check_class_sizes(kept, expected, settings.min_images_per_class)
    splits = selection.assign_splits(
        [(c["path"], c["patient_id"], c["label"]) for c in kept],
        settings.test_fraction,
        settings.validation_fraction,
        settings.seed,
    )
    rows = [
        {
            "path": c["path"],
            "label": c["label"],
            "source": c["source"],
            "patient_id": c["patient_id"],
            "split": splits[c["path"]],
            "sha256": digests[c["path"]],
        }
        for c in kept
    ]
    size = settings.image_size
    row_of = {c["qualified"]: (c, splits[c["path"]]) for c in kept}

    def to_row(t):
        c, split = row_of[t[0]]
        return (
            bytearray(t[3]),  # Spark 2.4 takes only bytearray for BinaryType
            size,
            size,
            c["label"],
            label_index(c["label"]),
            c["patient_id"],
            c["source"],
            c["path"],
            t[1],
            c["age"],
            split,
        )

    # Rejected and duplicate images have no row.
    frame = spark.createDataFrame(decoded.filter(lambda t: t[0] in row_of).map(to_row), SCHEMA)
    files_out = max(1, len(rows) * size * size * 3 // (settings.file_mb << 20))
    # The file a row lands in depends on its path alone, never on how many cores decoded it, so the
    # dataset's row order, and with it a seeded training run, is the same on every machine.
    placed = frame.coalesce(1) if files_out == 1 else frame.repartition(files_out, "original_path")
    log("writing {} images to {}/data".format(len(rows), output), started)
    # Written beside data/ and renamed into place: a killed or concurrent run never leaves a mix.
    staging = output + "/.data-partial"
    (
        placed.sortWithinPartitions("split", "original_path")
        .write.mode("overwrite")
        # Parquet tries a dictionary for every column first; for image bytes that is wasted work.
        .option("parquet.enable.dictionary#image", "false")
        .partitionBy("split")
        .parquet(staging)
    )
    decoded.unpersist()
    files.delete(output + "/data")
    files.rename(staging, output + "/data")

    result = manifest.build_manifest(
        rows, settings_record(settings), rejections, excluded, metadata_digests, size, inputs
    )
    result["files"] = parquet_files(files, output + "/data")
    files.write_text(output + "/.manifest.json.partial", json.dumps(result, indent=2, sort_keys=False))
    files.rename(output + "/.manifest.json.partial", output + "/manifest.json")
    return result


def parquet_files(files, data):
    """``{split=<s>/<file>: size}`` of the written dataset, which readers check before training."""
    listing = files.list_files(data) or {}
    return {
        path[len(data) + 1 :]: listed.size
        for path, listed in sorted(listing.items())
        if path.endswith(".parquet") and not path.rsplit("/", 1)[-1].startswith((".", "_"))
    }


def local_session(app_name="cxr-etl"):
    """A local[*] session whose Python workers use this interpreter (so they find cv2)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(os.environ.get("CXR_SPARK_MASTER", "local[*]"))
        .appName(app_name)
        .config("spark.driver.memory", "4g")
        .config("spark.ui.showConsoleProgress", "true")
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def submitted_session():
    """The session spark-submit (EMR) configured."""
    return SparkSession.builder.appName("cxr-etl").getOrCreate()


def main(argv=None, session_factory=submitted_session):
    """Exit codes: 0 done, 2 bad input or settings (the message says what to fix), 1 anything else."""
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_BAD_INPUT
    except EtlError as exc:
        print("cxr etl: error: {}".format(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    spark = session_factory()
    started = time.time()
    try:
        result = run(spark, settings)
    except EtlError as exc:
        print("cxr etl: error: {}".format(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in manifest.summary_lines(result):
        print(line)
    print("  wrote {}/manifest.json in {:.1f} s".format(settings.output.rstrip("/"), time.time() - started))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
