"""The ETL job. ``spark-submit spark_job.py ARGS`` on EMR; ``cxr etl ARGS`` locally.

Four phases: ``select`` (driver: read metadata, select, cap; small, pure Python), ``decode``
(executors: read, hash, decode, resize), ``judge`` (driver: rejections, exact and near duplicates,
split groups, splits), ``write_parquet`` (executors). Then manifest.json last, so a manifest means a
complete dataset.
"""

import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict, namedtuple

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql.types import BinaryType, DoubleType, IntegerType, StringType, StructField, StructType

from jobs.etl import (
    blobs,
    decoding,
    grouping,
    imaging,
    manifest,
    near_duplicates,
    output_guard,
    selection,
    sources,
)
from jobs.etl.batching import balanced_batches
from jobs.etl.errors import EtlError
from jobs.etl.filters import filter_of
from jobs.etl.hadoop import HadoopFiles
from jobs.etl.labels import label_index
from jobs.etl.settings import label_rules, parse_settings, settings_record

LOG = logging.getLogger(__name__)

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
        # 64-bit DCT hashes of the image and its zoomed centre, and a 64x64 gray thumbnail: what
        # ``cxr audit-data`` compares across splits and datasets (null with --no-near-duplicates).
        StructField("phash", StringType(), True),
        StructField("thumbnail", BinaryType(), True),
        StructField("split", StringType(), False),
    ]
)

Selected = namedtuple(
    "Selected", ["candidates", "rejections", "excluded", "metadata_digests", "expected", "inputs", "joins"]
)
Judged = namedtuple("Judged", ["kept", "decoded", "splits", "report"])


def log(message, started):
    """A progress line with the seconds since the job started, so that slow phases show."""
    LOG.info("[cxr etl %s +%.1fs] %s", time.strftime("%H:%M:%S"), time.time() - started, message)


def selection_rules(settings):
    return sources.Rules(
        settings.view,
        settings.modality,
        settings.covid_finding,
        settings.pneumonia_finding,
        settings.normal_finding,
        label_rules(settings.label),
    )


def read_sources(files, settings):
    """All candidates of all sources; also the metadata digests and the classes each source promises."""
    rules = selection_rules(settings)
    result = sources.SourceResult()
    digests = {}
    expected = set()
    for index, (kind, root) in enumerate(settings.source):
        source_filter = filter_of(kind, index, settings.source_filter)
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
        reader = sources.KINDS[kind]
        if reader.metadata is None:
            part = reader.read(None, None, root, images, rules, source_filter)
            expected.update(c["label"] for c in part.candidates)
        else:
            uri = root + "/" + reader.metadata
            data = files.read_bytes(uri) if uri in listing else None
            if data is None:
                raise EtlError(
                    "{}: metadata file not found; a {} source needs {} in its root folder".format(
                        uri, kind, reader.metadata
                    )
                )
            digests[uri] = imaging.content_digest(data)
            part = reader.read(sources.decode_text(data, uri), uri, root, images, rules, source_filter)
            expected.update(label for _, label in rules.labels[kind])
        for c in part.candidates:
            c["qualified"], c["bytes"] = images[c["path"]]
        result.candidates.extend(part.candidates)
        result.rejections.extend(part.rejections)
        result.exclusions.update(part.exclusions)
    return result, digests, expected


def unique_paths(candidates, joins):
    """One candidate per file. A file named by several metadata records is one image: the first
    record is kept and the patient ids of all of them are joined into one split group."""
    first = {}
    ids = defaultdict(set)
    for c in candidates:
        first.setdefault(c["path"], c)
        ids[c["path"]].add(c["patient_id"])
    for path, patients in sorted(ids.items()):
        joins.join(patients, "one file, several metadata records: {}".format(path))
    return list(first.values())


def check_class_sizes(rows, expected, minimum, test_only):
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
    if len(counts) < 2 and not test_only:
        raise EtlError(
            "only one class ({}) was found; a classifier needs at least two: add another --source, "
            "or pass --test-only for an external test set".format(", ".join(counts) or "none")
        )


def select(files, settings, started):
    """Phase 1 (driver): metadata -> candidates after the rules, adults filter and caps."""
    found, metadata_digests, expected = read_sources(files, settings)
    joins = grouping.Joins([])
    candidates = unique_paths(found.candidates, joins)
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
    return Selected(capped, found.rejections, excluded, metadata_digests, expected, inputs, joins)


def decode(spark, settings, candidates, started):
    """Phase 2 (executors): read, hash, decode, resize. Only URIs travel, no shuffle of raw files."""
    sc = spark.sparkContext
    batches = balanced_batches(
        {c["qualified"]: c["bytes"] for c in candidates}, settings.partitions or 2 * sc.defaultParallelism
    )
    log(
        "decoding {} images at {}x{} in {} tasks".format(
            len(candidates), settings.image_size, settings.image_size, len(batches)
        ),
        started,
    )
    return (
        sc.parallelize(batches, max(1, len(batches)))
        .mapPartitions(decoding.decode_batches(settings.image_size, not settings.no_near_duplicates))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )


def judge(outcomes, chosen, settings, started):
    """Phase 3 (driver): rejections, exact and near duplicates, split groups, splits."""
    by_qualified = {c["qualified"]: c for c in chosen.candidates}
    rejections, joins = chosen.rejections, chosen.joins
    decoded = {}
    for d in outcomes:
        c = by_qualified[d.uri]
        if d.reason:
            rejections.append({"path": c["path"], "source": c["source"], "reason": d.reason})
        else:
            decoded[c["path"]] = d
    by_path = {c["path"]: c for c in chosen.candidates}
    digests = {path: d.sha256 for path, d in decoded.items()}
    for duplicate, original in sorted(selection.find_duplicates(digests).items()):
        rejections.append(
            {
                "path": duplicate,
                "source": by_path[duplicate]["source"],
                "reason": "duplicate: same bytes as {}".format(original),
            }
        )
        joins.join(
            [by_path[duplicate]["patient_id"], by_path[original]["patient_id"]],
            "same bytes: {} and {}".format(duplicate, original),
        )
        del decoded[duplicate]
    kept = [c for c in chosen.candidates if c["path"] in decoded]
    check_class_sizes(kept, chosen.expected, settings.min_images_per_class, settings.test_only)
    pairs = []
    if not settings.no_near_duplicates:
        pairs = near_duplicates.matches(
            [decoded[c["path"]].phash for c in kept], [decoded[c["path"]].thumbnail for c in kept]
        )
        log("{} near-duplicate pairs among {} images".format(len(pairs), len(kept)), started)
    for i, j, _, _ in pairs:
        joins.join(
            [kept[i]["patient_id"], kept[j]["patient_id"]],
            "near-duplicates: {} and {}".format(kept[i]["path"], kept[j]["path"]),
        )
    if settings.test_only:
        splits = {c["path"]: "test" for c in kept}
    else:
        splits = selection.assign_splits(
            [(c["path"], joins.group_of(c["patient_id"]), c["label"]) for c in kept],
            settings.test_fraction,
            settings.validation_fraction,
            settings.seed,
        )
    split_of_group = {joins.group_of(c["patient_id"]): splits[c["path"]] for c in kept}
    report = {"merged_patients": joins.merged(split_of_group)}
    if not settings.no_near_duplicates:
        report["near_duplicates"] = grouping.near_duplicate_report(kept, pairs, splits)
        report["perceptual_hashes"] = {c["path"]: decoded[c["path"]].phash for c in kept}
    return Judged(kept, decoded, splits, report)


def write_parquet(spark, settings, decoded_rdd, judged, output, started):
    """Phase 4 (executors): one Parquet row per kept image, partitioned by split, in a staging folder."""
    size = settings.image_size
    row_of = {judged.decoded[c["path"]].uri: (c, judged.splits[c["path"]]) for c in judged.kept}

    def to_row(d):
        c, split = row_of[d.uri]
        return (
            bytearray(d.pixels),  # Spark 2.4 takes only bytearray for BinaryType
            size,
            size,
            c["label"],
            label_index(c["label"]),
            c["patient_id"],
            c["source"],
            c["path"],
            d.sha256,
            c["age"],
            d.phash,
            None if d.thumbnail is None else bytearray(d.thumbnail),
            split,
        )

    # Rejected and duplicate images have no row.
    frame = spark.createDataFrame(decoded_rdd.filter(lambda d: d.uri in row_of).map(to_row), SCHEMA)
    files_out = max(1, len(row_of) * size * size * 3 // (settings.file_mb << 20))
    # The file a row lands in depends on its path alone, never on how many cores decoded it, so the
    # dataset's row order, and with it a seeded training run, is the same on every machine.
    placed = frame.coalesce(1) if files_out == 1 else frame.repartition(files_out, "original_path")
    log("writing {} images to {}/data".format(len(row_of), output), started)
    # Written beside data/ and renamed into place: a killed or concurrent run never leaves a mix.
    staging = output + "/.data-partial"
    (
        placed.sortWithinPartitions("split", "original_path")
        .write.mode("overwrite")
        # Parquet tries a dictionary for every column first; for image bytes that is wasted work, and
        # so it is for the near-duplicate columns (one distinct value per image).
        .option("parquet.enable.dictionary#image", "false")
        .option("parquet.enable.dictionary#thumbnail", "false")
        .option("parquet.enable.dictionary#phash", "false")
        .partitionBy("split")
        .parquet(staging)
    )
    return staging


def run(spark, settings):
    """Runs the ETL and returns the manifest it wrote (last, so a manifest means a complete dataset)."""
    started = time.time()
    files = HadoopFiles(spark)
    output = settings.output.rstrip("/")
    output_guard.check_apart(
        files.qualify(output),
        [("--source {}={}".format(kind, root), files.qualify(root)) for kind, root in settings.source],
    )
    output_guard.claim(files, output)
    files.delete(output + "/manifest.json")
    chosen = select(files, settings, started)
    decoded_rdd = decode(spark, settings, chosen.candidates, started)
    outcomes = decoded_rdd.map(lambda d: d._replace(pixels=None)).collect()
    judged = judge(outcomes, chosen, settings, started)
    staging = write_parquet(spark, settings, decoded_rdd, judged, output, started)
    files.delete(output + "/data")
    files.rename(staging, output + "/data")
    decoded_rdd.unpersist()
    rows = [
        {
            "path": c["path"],
            "label": c["label"],
            "source": c["source"],
            "patient_id": c["patient_id"],
            "split": judged.splits[c["path"]],
            "sha256": judged.decoded[c["path"]].sha256,
        }
        for c in judged.kept
    ]
    result = manifest.build_manifest(
        rows,
        settings_record(settings),
        chosen.rejections,
        chosen.excluded,
        chosen.metadata_digests,
        settings.image_size,
        chosen.inputs,
    )
    result.update(judged.report)
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
        LOG.error("cxr etl: error: %s", exc)
        return EXIT_BAD_INPUT
    spark = session_factory()
    started = time.time()
    try:
        result = run(spark, settings)
    except EtlError as exc:
        LOG.error("cxr etl: error: %s", exc)
        return EXIT_BAD_INPUT
    for line in manifest.summary_lines(result):
        LOG.info(line)
    LOG.info("  wrote %s/manifest.json in %.1f s", settings.output.rstrip("/"), time.time() - started)
    return EXIT_OK


if __name__ == "__main__":
    # spark-submit on EMR runs this file alone (no jobs.console there): the same plain lines on stdout.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    sys.exit(main())
