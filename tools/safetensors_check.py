#!/usr/bin/python3
"""Cross-checks safetensors files with numpy alone (no safetensors package needed).

  safetensors_check.py dump [--tapegrad] FILE
                                    check FILE as the reference implementation does (and with
                                    --tapegrad the promises tapegrad's writer makes: header
                                    padded to 8 bytes, keys sorted, each tensor aligned to its
                                    element size), then print one line per tensor:
                                      name<TAB>DTYPE<TAB>d0,d1,..<TAB>v0 v1 ...
                                    and one per metadata entry:  #meta<TAB>key<TAB>value
                                    Exit status 1, with the reasons, when a check fails.
  safetensors_check.py write FILE   write the file tests/test_io_safetensors.c reads back
                                    (committed as tests/fixtures/numpy_written.safetensors),
                                    laid out as the reference implementation lays it out.
"""
import json
import struct
import sys

import numpy as np

MAX_HEADER = 100_000_000

# dtype -> (numpy dtype of the stored bytes, element size); BF16 is kept as its raw bits.
DTYPES = {
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
    "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("<i1", 1),
    "U64": ("<u8", 8), "U32": ("<u4", 4), "U16": ("<u2", 2), "U8": ("<u1", 1),
    "BOOL": ("<u1", 1),
}
# The reference sorts tensors by this enum, largest first, then by name.
REFERENCE_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]


def fail(problems):
    for p in problems:
        print("safetensors_check: " + p, file=sys.stderr)
    sys.exit(1)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in %r" % keys)
    return dict(pairs)


def read(path, tapegrad):
    """The header, the metadata and the data bytes, checked as the reference checks them,
    and when `tapegrad` is true also for the layout tapegrad's writer promises."""
    with open(path, "rb") as f:
        raw = f.read()
    problems = []
    if len(raw) < 8:
        fail(["%s: %d bytes, shorter than the 8-byte header size" % (path, len(raw))])
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        fail(["%s: header size %d is over the limit or past the end (%d bytes)" % (path, n, len(raw))])
    text = raw[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail(["%s: the header does not start with '{'" % path])
    pairs = json.loads(text, object_pairs_hook=lambda p: p)
    header = no_duplicates(pairs)
    names = [k for k, _ in pairs if k != "__metadata__"]
    if tapegrad and n % 8:
        problems.append("header size %d is not a multiple of 8" % n)
    if tapegrad and names != sorted(names):
        problems.append("tensor keys are not sorted: %r" % names)
    metadata = no_duplicates(header.pop("__metadata__", []))
    if not all(isinstance(v, str) for v in metadata.values()):
        problems.append("metadata values must be strings")
    header = {name: no_duplicates(info) for name, info in header.items()}
    data = raw[8 + n:]
    at = 0
    for name, info in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, end = info["data_offsets"]
        size = DTYPES[info["dtype"]][1]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if begin != at or end < begin:
            problems.append("%s: data_offsets [%d, %d] do not follow the previous tensor (ends at %d)"
                            % (name, begin, end, at))
        if end - begin != count * size:
            problems.append("%s: shape %r of %s does not span [%d, %d)" % (name, info["shape"], info["dtype"], begin, end))
        if tapegrad and begin % size:
            problems.append("%s: begins at %d, not aligned to its %d-byte elements" % (name, begin, size))
        at = end
    if at != len(data):
        problems.append("the tensors cover %d bytes of data, the file has %d" % (at, len(data)))
    if problems:
        fail(["%s: %s" % (path, p) for p in problems])
    return header, metadata, data


def values(info, data):
    begin, end = info["data_offsets"]
    a = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]][0])
    if info["dtype"] == "BF16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    if info["dtype"] == "BOOL":
        a = a != 0
    return a.reshape(info["shape"])


def fmt(v):
    if isinstance(v, (np.floating, float)):
        return repr(float(v))
    return str(int(v))


def dump(path, tapegrad):
    header, metadata, data = read(path, tapegrad)
    for key in sorted(metadata):
        print("#meta\t%s\t%s" % (key, metadata[key]))
    for name in sorted(header):
        info = header[name]
        a = values(info, data)
        print("%s\t%s\t%s\t%s" % (name, info["dtype"], ",".join(str(d) for d in info["shape"]),
                                  " ".join(fmt(v) for v in a.ravel())))


def fixture():
    bf16_bits = np.array([0x3F80, 0xC020], dtype="<u2")          # 1.0, -2.5
    return {
        "bias": ("F32", np.array([0.5, -1.25, 3.0], dtype="<f4")),
        "weights": ("F64", (np.arange(6, dtype="<f8") / 4 - 0.5).reshape(2, 3)),
        "counts": ("I64", np.array([-3, 0, 7, 2**40], dtype="<i8")),
        "ids": ("I32", np.array([[1, -2], [3, -4]], dtype="<i4")),
        "mask": ("BOOL", np.array([True, False, True]).astype("<u1")),
        "pixels": ("U8", np.array([[0, 7], [128, 255]], dtype="<u1")),
        "half": ("F16", np.array([1.5, -0.25], dtype="<f2")),
        "bf": ("BF16", bf16_bits),
        "scalar": ("F32", np.array(42.0, dtype="<f4")),
        "empty": ("F32", np.zeros((0, 3), dtype="<f4")),
        "i8": ("I8", np.array([-128, 127], dtype="<i1")),
        "i16": ("I16", np.array([-32768, 32767], dtype="<i2")),
        "u16": ("U16", np.array([65535], dtype="<u2")),
        "u32": ("U32", np.array([4294967295], dtype="<u4")),
        "na\u00efve/\u00fcnicode \"q\"": ("F32", np.array([7.0], dtype="<f4")),
    }


def write(path):
    tensors = fixture()
    order = sorted(tensors, key=lambda k: (-REFERENCE_ORDER.index(tensors[k][0]), k))
    header = {"__metadata__": {"format": "np", "writer": "tools/safetensors_check.py"}}
    blobs, at = [], 0
    for name in order:
        dtype, a = tensors[name]
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")   # \u escapes for non-ASCII
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    args = sys.argv[1:]
    tapegrad = "--tapegrad" in args
    args = [a for a in args if a != "--tapegrad"]
    if len(args) != 2 or args[0] not in ("dump", "write"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if args[0] == "dump":
        dump(args[1], tapegrad)
    else:
        write(args[1])


if __name__ == "__main__":
    main()
