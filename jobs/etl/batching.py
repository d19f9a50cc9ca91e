"""Spreading files over decode tasks so that every core finishes at about the same time."""

import heapq


def balanced_batches(sizes, count):
    """``{uri: bytes}`` -> at most ``count`` lists of URIs with about equal byte totals.

    Largest first, each to the lightest batch (LPT). Bytes stand in for decode time: one
    source's files are often all small JPEGs and another's all large PNGs, so equal file counts
    in path order would leave one core with most of the work. Deterministic: ties break by URI.
    """
    heap = [(0, index, []) for index in range(max(1, min(count, len(sizes))))]
    for uri in sorted(sizes, key=lambda u: (-sizes[u], u)):
        total, index, batch = heapq.heappop(heap)
        batch.append(uri)
        heapq.heappush(heap, (total + sizes[uri], index, batch))
    return [batch for _, _, batch in sorted(heap, key=lambda item: item[1]) if batch]
