"""Executor side of the ETL: batches of URIs in, one ``Decoded`` record per image out."""

from collections import namedtuple

from jobs.etl import blobs, imaging, near_duplicates

# ``pixels``: the resized RGB bytes; ``phash``/``thumbnail``: None when near-duplicates are off or the
# image was rejected (``reason`` says why).
Decoded = namedtuple("Decoded", ["uri", "sha256", "reason", "pixels", "phash", "thumbnail"])


def decode_one(uri, size, hashing):
    data = blobs.read_blob(uri)
    if data is None:
        return Decoded(uri, None, "missing file: could not be read", None, None, None)
    digest = imaging.content_digest(data)
    try:
        rgb, gray = imaging.decode_rgb_and_gray(data)
        resized = imaging.resize_rgb(rgb, size)
        if not hashing:
            return Decoded(uri, digest, None, resized.tobytes(), None, None)
        # The hashes' basis is the 224 px image: the output itself at that size, else the smallest
        # full-size array with the same values (the gray plane of a gray file).
        full_size = rgb if gray is None else gray
        basis = resized if size == near_duplicates.BASIS_SIDE else full_size
        hashes, thumbnail = near_duplicates.describe(basis)
        return Decoded(uri, digest, None, resized.tobytes(), hashes, thumbnail)
    except imaging.ImageRejected as exc:
        return Decoded(uri, digest, str(exc), None, None, None)
    except Exception as exc:  # noqa: BLE001 - a decoder crash is a rejection, not a lost job
        return Decoded(uri, digest, "corrupt image: {}".format(exc), None, None, None)


def decode_batches(size, hashing=True):
    """For ``mapPartitions``: each task gets batches of URIs and reads the bytes itself."""

    def run(batches):
        imaging.use_one_thread()
        for batch in batches:
            for uri in batch:
                yield decode_one(uri, size, hashing)

    return run
