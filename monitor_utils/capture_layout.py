"""Capture lines written in SageMaker's own single-record CSV layout, found and cut into fields by byte positions."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import as_strided

# bytes below this ('"', a line break, a space, '!', every control byte) and every byte outside ASCII (negative as
# int8) are where a line's layout is checked: all of them are found in one vectorised pass, and a line of a layout
# has exactly that layout's ones, in order
MARK = 35
MARK_BLOCK = 1 << 18  # bytes compared at once
BREAK, BACKSLASH = 10, 92
INLINE = 12  # Arrow's string view holds a text of up to this many bytes in the view itself
_KEEP = np.array([0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF], dtype="<u4")  # the first k bytes of a little-endian word
LARGEST = 1 << 31  # an object this large is not cut (a string view's offset is 32 bits)
BOM = b"\xef\xbb\xbf"  # dropped at the start of an object (as reader.split_lines does)
FIELDS = ("data", "y", "event_id", "inference_id", "time", "line")


@dataclass(frozen=True)
class Layout:
    """One exact line layout: constant byte segments around the fields (each a JSON string's content).

    ``segments[j]`` precedes field ``fields[j]``; the last segment ends the line. A field holds no byte below
    ``MARK``: no quote, no control byte.
    """

    segments: tuple[bytes, ...]
    fields: tuple[str, ...]

    @functools.cached_property
    def marks(self) -> tuple[int, np.ndarray]:
        """(how many marks a line of this layout holds, the index among them of each segment's first mark after
        the first segment)."""
        count, columns = 0, []
        for j, segment in enumerate(self.segments):
            if j:
                columns.append(count)
            count += sum(b < MARK for b in segment)
        return count, np.array(columns)


def _layout(output_type: bytes, metadata: tuple[str, ...]) -> Layout:
    side = b'{"observedContentType":"%s","mode":"%s","data":"'
    segments = [b'{"captureData":{"endpointInput":' + side % (b"text/csv", b"INPUT"),
                b'","encoding":"CSV"},"endpointOutput":' + side % (output_type, b"OUTPUT"),
                b'","encoding":"CSV"}},"eventMetadata":{']
    for name in metadata:
        segments[-1] += b'"%s":"' % name.encode()
        segments.append(b'",')
    segments[-1] = b'"},"eventVersion":"0"}'
    names = {"eventId": "event_id", "inferenceId": "inference_id", "inferenceTime": "time"}
    return Layout(tuple(segments), ("data", "y") + tuple(names[m] for m in metadata))


# what SageMaker writes for a CSV request and response (its eventMetadata with or without an inferenceId; the
# simulated endpoint writes the inferenceId last)
LAYOUTS = tuple(_layout(t, m) for t in (b"text/csv; charset=utf-8", b"text/csv")
                for m in (("eventId", "inferenceTime", "inferenceId"), ("eventId", "inferenceId", "inferenceTime"),
                          ("eventId", "inferenceTime")))


@dataclass
class Cut:
    """The lines of one object that follow a layout, cut into fields (in line order), and the lines that do not.

    Attributes
    ----------
    line : np.ndarray
        1-based line number of each cut line.
    spans : dict[str, tuple[np.ndarray, np.ndarray]]
        Per field, (start, end) byte offsets of its text in the object (``inference_id`` empty when absent), and
        of the whole ``line``.
    rest : list[tuple[int, bytes]]
        Every other non-blank line as (line number, bytes), a trailing ``\\r`` stripped (as ``reader.split_lines``).
    lines : int
        Non-blank lines of the object.
    """

    line: np.ndarray
    spans: dict
    rest: list
    lines: int


def _segment_at(data: np.ndarray, at: np.ndarray, segment: bytes) -> np.ndarray:
    """Whether ``segment`` starts at each offset ``at`` of ``data`` (a gather of its bytes, 8 at a time, per offset)."""
    n = len(segment)
    if len(data) < n:
        return np.zeros(len(at), dtype=bool)
    at = np.minimum(at, len(data) - n)
    words, tail = divmod(n, 8)
    ok = np.ones(len(at), dtype=bool)
    if words:  # unaligned 8-byte words read in place
        wide = np.ndarray((len(data) - n + 1, words), dtype=np.uint64, buffer=data, strides=(1, 8))
        ok &= (wide[at] == np.frombuffer(segment[: words * 8], dtype=np.uint64)).all(axis=1)
    if tail:
        narrow = as_strided(data[words * 8:], shape=(len(data) - n + 1, tail), strides=(1, 1), writeable=False)
        ok &= (narrow[at] == np.frombuffer(segment[words * 8:], dtype=np.uint8)).all(axis=1)
    return ok


def _marks(data: np.ndarray, skip: int) -> np.ndarray:
    """Offsets of the bytes below ``MARK`` or outside ASCII from ``skip`` on, found a block at a time (a small
    buffer reused: no pass allocates the object's size)."""
    block = np.empty(min(MARK_BLOCK, len(data)), dtype=bool)
    signed = data.view(np.int8)
    found = []
    for at in range(skip, len(data), MARK_BLOCK):
        part = signed[at:at + MARK_BLOCK]
        np.less(part, MARK, out=block[:len(part)])
        found.append(np.flatnonzero(block[:len(part)]) + at)
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def cut(body: bytes) -> Cut:
    """The object's lines in one of :data:`LAYOUTS` cut into fields, and its other lines as they are.

    A line is cut only when it is byte for byte a layout (its constant segments at their places, its fields free
    of quotes, backslashes (JSON escapes), control bytes and bytes outside ASCII): its JSON then holds exactly these
    fields with these texts. Lines are split as :func:`reader.split_lines` does.
    """
    data = np.frombuffer(body, dtype=np.uint8)
    skip = len(BOM) if body.startswith(BOM) else 0
    pos = _marks(data, skip)
    mark = data[pos]
    if not body.endswith(b"\n"):  # the last line ends where the object does
        pos, mark = np.append(pos, len(body)), np.append(mark, np.uint8(BREAK))
    breaks = np.flatnonzero(mark == BREAK)
    first = np.concatenate(([0], breaks[:-1] + 1))  # index into pos of each line's first mark
    count = breaks - first
    start = np.concatenate(([skip], pos[breaks[:-1]] + 1))
    end = pos[breaks]
    matched = np.zeros(len(breaks), dtype=bool)
    if b"\\" in body:  # its lines hold JSON escapes: a JSON parser reads them
        barred = np.zeros(len(breaks), dtype=bool)
        barred[np.searchsorted(end, np.flatnonzero(data == BACKSLASH))] = True
    else:
        barred = matched
    found = []
    for layout in LAYOUTS if len(body) < LARGEST else ():
        marks, columns = layout.marks
        lines = np.flatnonzero((count == marks) & ~matched & ~barred)
        if not len(lines):
            continue
        # where each segment starts: the line's start, then the mark that opens it (each opens with a quote). With
        # every segment there byte for byte and the line's end right after the last one, the line holds only
        # its segments' marks (their count is the layout's): no field holds one.
        anchors = [start[lines]] + list(pos[first[lines, None] + columns].T)
        ok = np.ones(len(lines), dtype=bool)
        for segment, anchor in zip(layout.segments, anchors):
            ok &= _segment_at(data, anchor, segment)
        ok &= end[lines] == anchors[-1] + len(layout.segments[-1])
        if not ok.any():
            continue
        matched[lines[ok]] = True
        spans = {name: (anchors[j][ok] + len(layout.segments[j]), anchors[j + 1][ok])
                 for j, name in enumerate(layout.fields)}
        spans.setdefault("inference_id", (spans["time"][0], spans["time"][0]))  # none: an empty text
        spans["line"] = (start[lines[ok]], end[lines[ok]])
        found.append((lines[ok], spans))
    rest = []
    for i in np.flatnonzero(~matched):
        line = body[start[i]:end[i]]
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip(b" \t\r"):
            rest.append((int(i) + 1, line))
    line = np.concatenate([f[0] for f in found]) if found else np.empty(0, dtype=np.int64)
    order = np.argsort(line, kind="stable")
    spans = {}
    for name in FIELDS:
        spans[name] = tuple(np.concatenate([f[1][name][k] for f in found])[order] if found
                            else np.empty(0, dtype=np.int64) for k in (0, 1))
    return Cut(line[order] + 1, spans, rest, len(line) + len(rest))


def strings(body: bytes, start: np.ndarray, end: np.ndarray) -> pa.Array:
    """The texts body[start:end] as one Arrow string array (from their :func:`views`: one copy of their bytes)."""
    return views(body, start, end).cast(pa.string())


def views(buffer: pa.Buffer | bytes, start: np.ndarray, end: np.ndarray) -> pa.Array:
    """The texts buffer[start:end] as an Arrow ``string_view`` array over ``buffer`` (no copy of a longer text).

    Arrow's layout: each view is 16 bytes, the text's length, then the text itself when it is at most
    ``INLINE`` bytes (zero padded), else its first 4 bytes, buffer 0 and its offset. The short texts' bytes are
    read as three unaligned 4-byte words each (one gather per word, not per byte).
    """
    data = np.frombuffer(buffer, dtype=np.uint8)
    start = np.asarray(start, dtype=np.int64)
    sizes = np.asarray(end, dtype=np.int64) - start
    out = np.zeros((len(start), 4), dtype="<u4")
    out[:, 0] = sizes
    if len(data) >= 4:
        words = np.ndarray((len(data) - 3,), dtype="<u4", buffer=data, strides=(1,))  # a word at every byte
        for k in range(3):
            keep = np.clip(sizes - 4 * k, 0, 4)
            out[:, 1 + k] = words[np.minimum(start + 4 * k, len(data) - 4)] & _KEEP[keep]
    near_end = np.flatnonzero(start + INLINE > len(data))  # their words were read from a shifted place: by hand
    for i in near_end:
        text = bytes(data[start[i]:start[i] + min(sizes[i], INLINE)]).ljust(INLINE, b"\0")
        out[i, 1:] = np.frombuffer(text, dtype="<u4")
    long = np.flatnonzero(sizes > INLINE)
    if len(long):
        out[long, 1] = np.ndarray((len(data) - 3,), dtype="<u4", buffer=data, strides=(1,))[start[long]]
        out[long, 2] = 0  # buffer 0
        out[long, 3] = start[long]
    buffer = buffer if isinstance(buffer, pa.Buffer) else pa.py_buffer(buffer)
    return pa.Array.from_buffers(pa.string_view(), len(start), [None, pa.py_buffer(out), buffer])
