#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (standard
library only). Each seed is small and valid, or nearly so, so that the fuzzer starts
from every branch of the format. The IDX, NPY and CSV seeds start with the option
byte their target reads (fuzz/targets.c)."""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- safetensors ----------------------------------------------------------------------
def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, blobs, at = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


f32 = struct.pack("<4f", 1.0, -2.5, 3.0, 0.5)
put("safetensors", "f32_i64_meta", safetensors(
    [("dense/kernel", "F32", [2, 2], f32), ("step", "I64", [], struct.pack("<q", 7))],
    {"epoch": "3", "tapegrad_iterations": "12"}))
put("safetensors", "all_dtypes", safetensors([
    ("a_f64", "F64", [1], struct.pack("<d", 1.5)), ("b_i32", "I32", [2], struct.pack("<2i", -1, 2)),
    ("c_bool", "BOOL", [3], bytes([0, 1, 1])), ("d_u8", "U8", [2], bytes([0, 255])),
    ("e_i8", "I8", [1], bytes([0x80])), ("f_i16", "I16", [1], struct.pack("<h", -300)),
    ("g_u16", "U16", [1], struct.pack("<H", 65535)), ("h_u32", "U32", [1], struct.pack("<I", 2**32 - 1)),
    ("i_u64", "U64", [1], struct.pack("<Q", 2**63)), ("j_f16", "F16", [2], bytes([0x00, 0x3c, 0x00, 0x7c])),
    ("k_bf16", "BF16", [2], bytes([0x80, 0x3f, 0xc0, 0x7f]))]))
put("safetensors", "empty_header", safetensors([]))
put("safetensors", "zero_size_tensor", safetensors([("z", "F32", [0, 3], b"")]))
put("safetensors", "rank8", safetensors([("r", "U8", [1] * 8, b"\x05")]))
put("safetensors", "truncated", safetensors([("t", "F32", [4], f32)])[:-3])
put("safetensors", "overlap", struct.pack("<Q", 80) + json.dumps(
    {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
     "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}).encode().ljust(80) + b"abc")
put("safetensors", "escapes", safetensors([("n\u00e9\"q", "U8", [1], b"\x01")], {"k\n": "v\u263a"}))

# ---- IDX (option byte: 0 = plain float32, 1 = gzip the rest, 6 = int32) ------------------
def idx(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


u8 = idx(0x08, [2, 3], bytes(range(6)))
put("idx", "u8_plain", b"\x00" + u8)
put("idx", "u8_gzip_by_target", b"\x01" + u8)
put("idx", "u8_gzip_file", b"\x10" + gzip.compress(u8, mtime=0))
put("idx", "labels_i32", b"\x06" + idx(0x08, [4], bytes([0, 9, 3, 1])))
put("idx", "f32", b"\x00" + idx(0x0D, [2], struct.pack(">2f", 1.5, -0.25)))
put("idx", "f64", b"\x04" + idx(0x0E, [1, 1], struct.pack(">d", 2.0)))
put("idx", "i16_rank3", b"\x00" + idx(0x0B, [1, 2, 1], struct.pack(">2h", -7, 300)))
put("idx", "i8", b"\x06" + idx(0x09, [2], bytes([0xff, 0x7f])))
put("idx", "i32", b"\x08" + idx(0x0C, [1], struct.pack(">i", -2**31)))
put("idx", "truncated", b"\x00" + u8[:-2])
put("idx", "gzip_truncated", b"\x10" + gzip.compress(u8, mtime=0)[:-5])
put("idx", "scalar_rank0", b"\x00" + idx(0x08, [], bytes([42])))

# ---- NPY (option byte: 0 = the file's dtype) --------------------------------------------
def npy(descr, shape, payload, version=1, fortran=False):
    shape_s = "(%s,)" % shape[0] if len(shape) == 1 else "(%s)" % ", ".join(map(str, shape))
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_s)
    size_len = 2 if version == 1 else 4
    total = 6 + 2 + size_len + len(h) + 1
    h += " " * (-total % 64) + "\n"
    size = struct.pack("<H" if version == 1 else "<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + size + h.encode("latin1" if version < 3 else "utf8") + payload


put("npy", "f4", b"\x00" + npy("<f4", [2, 3], struct.pack("<6f", *range(6))))
put("npy", "f8_big", b"\x00" + npy(">f8", [2], struct.pack(">2d", 1.0, -1.0)))
put("npy", "i8_to_f32", b"\x01" + npy("<i8", [3], struct.pack("<3q", 1, -2, 3)))
put("npy", "u1_scalar", b"\x00" + npy("|u1", [], b"\x07"))
put("npy", "b1", b"\x05" + npy("|b1", [4], bytes([0, 1, 0, 1])))
put("npy", "f2_v2", b"\x08" + npy("<f2", [2], bytes([0x00, 0x3c, 0x00, 0xc0]), version=2))
put("npy", "u4_v3", b"\x00" + npy("<u4", [1, 1], struct.pack("<I", 4000000000), version=3))
put("npy", "i2_u2", b"\x03" + npy("<i2", [2], struct.pack("<2h", -5, 5)))
put("npy", "fortran", b"\x00" + npy("<f4", [2, 2], struct.pack("<4f", 1, 2, 3, 4), fortran=True))
put("npy", "truncated", b"\x00" + npy("<f4", [4], struct.pack("<3f", 1, 2, 3)))
put("npy", "zero_dim", b"\x00" + npy("<f4", [0, 5], b""))

# ---- CSV (option byte: bit 0 no header, bits 1-2 delimiter, bits 3-5 label, bit 6 f64) ----
put("csv", "header_label_last", b"\x08" + b"a,b,y\n1,2,0\n3.5,-4e2,1\n")
put("csv", "label_by_name", b"\x20" + b"x1,y,x2\n1,0,2\n3,1,4\n")
put("csv", "no_header_semicolon", b"\x03" + b"1;2;3\n4;5;6\n")
put("csv", "tab_f64", b"\x44" + b"a\tb\n1\t2\n")
put("csv", "quoted_crlf_bom", b"\x10" + b"\xef\xbb\xbf\"a\",\"b\"\r\n\"1.5\",\"2\"\r\n\r\n3,4\r\n")
put("csv", "nan_inf", b"\x08" + b"a,b\nnan,inf\n-inf,0\n")
put("csv", "float_labels", b"\x08" + b"a,y\n1,0.5\n2,1.5\n")
put("csv", "ragged", b"\x00" + b"a,b\n1,2\n3\n")
put("csv", "text_cell", b"\x00" + b"a,b\n1,two\n")
put("csv", "header_only", b"\x00" + b"a,b\n")
put("csv", "label_column2", b"\x19" + b"1,2,3\n4,5,6\n")
put("csv", "space_delim", b"\x07" + b"1 2\n3 4\n")

# ---- model specs ------------------------------------------------------------------------
for i, text in enumerate(["mlp:500", "mlp:512,256", "cnn", "mlp:1,2,3,4,5,6,7,8", "mlp:100000",
                          "mlp:", "mlp:3,", "rnn:3", "mlp:0", "mlp:99999999999999999999"]):
    put("spec", f"spec{i}", text)

# ---- model-file metadata: the __metadata__ value of a checkpoint's header --------------
for i, text in enumerate(['{"tapegrad_iterations":"1"}', '{"epoch":"1","tapegrad_iterations":"5"}', '{}',
                          '{"tapegrad_iterations":"99999999999999999999999"}', '{"epoch":"3","epoch":"4"}',
                          '{"k":"\\u0000x"}', '{"a":1}', '{"tapegrad_iterations":"1"', '[]', '"x"']):
    put("model", f"meta{i}", text)


# ---- model architectures: the tapegrad_model value (Keras's model.to_json) -------------
def layer(cls, name, **options):
    return {"class_name": cls, "config": dict({"name": name, "trainable": True, "dtype": "float32"}, **options)}


def init(cls, **config):
    return {"class_name": cls, "config": config}


DENSE = dict(units=2, activation="relu", use_bias=False, kernel_initializer=init("GlorotUniform"),
             bias_initializer=None, kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
             kernel_constraint=None, bias_constraint=None)
ADAM = {"class_name": "Adam", "config": {
    "learning_rate": 0.001, "weight_decay": 0, "clipnorm": 0, "clipvalue": 0, "global_clipnorm": 0,
    "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": 0, "gradient_accumulation_steps": 0,
    "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}}
MSE = {"class_name": "mean_squared_error", "config": {
    "from_logits": False, "label_smoothing": 0, "delta": 1, "alpha": 0, "gamma": 0}}


def sequential(layers, shape, compile_config=None):
    model = {"class_name": "Sequential", "config": {"name": "sequential", "trainable": True, "dtype": "float32",
                                                    "seed": "0", "layers": layers},
             "build_config": {"input_shape": [None] + shape}}
    if compile_config:
        model["compile_config"] = compile_config
    return json.dumps(model)


put("config", "dense", sequential([layer("Dense", "dense", **DENSE)], [2]))
put("config", "dense_compiled", sequential([layer("Dense", "dense", **DENSE)], [2], {
    "optimizer": ADAM, "loss": [MSE], "loss_weights": [1], "metrics": [["mean_absolute_error"]]}))
put("config", "bidirectional", sequential([layer("Bidirectional", "bidirectional", merge_mode="concat", layer=layer(
    "GRU", "gru", units=2, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    kernel_initializer=None, recurrent_initializer=None, bias_initializer=None, unit_forget_bias=True,
    reset_after=True, return_sequences=False, go_backwards=False, kernel_regularizer=None,
    recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
    bias_constraint=None))], [3, 2]))
put("config", "unknown_class", sequential([layer("Fancy", "f")], [2]))
put("config", "wrong_type", sequential([layer("Dense", "dense", **dict(DENSE, units="3"))], [2]))
put("config", "functional", json.dumps({"class_name": "Functional", "config": {
    "name": "f", "trainable": True, "dtype": "float32", "seed": "0",
    "layers": [
        {"class_name": "InputLayer", "name": "a", "inbound_nodes": [],
         "config": {"name": "a", "batch_input_shape": [None, 2], "dtype": "float32"}},
        dict(layer("Dense", "shared", **DENSE), name="shared", inbound_nodes=[[["a", 0, 0, {}]], [["a", 0, 0, {}]]]),
        dict(layer("Add", "add"), name="add", inbound_nodes=[[["shared", 0, 0, {}], ["shared", 1, 0, {}]]])],
    "input_layers": [["a", 0, 0]], "output_layers": [["add", 0, 0]]}}))
put("config", "nested", sequential([{"class_name": "Sequential", "config": {
    "name": "inner", "trainable": True, "dtype": "float32", "seed": "0",
    "layers": [layer("Dense", "dense", **DENSE)]}, "build_config": {"input_shape": [None, 2]}}], [2]))
put("config", "not_json", '{"class_name": "Sequential", "config": {')


# ---- op-graph programs: 8 seed bytes, a config byte, then steps of 10 bytes ------------
# (row, operands, domain, 7 attribute bytes); the rows are walked in the table's order
# (src/ops/ops.def, which makes the enum of src/ops/op.h), three per program, so the seeds
# start from every row.
def op_rows():
    import re
    text = open(os.path.join(HERE, "..", "src", "ops", "ops.def")).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.findall(r"^OP\((\w+),", text, flags=re.M)


rows = op_rows()
put("opgraph", "empty", bytes(9))
for start in range(0, len(rows), 3):
    prog = struct.pack("<Q", 1000 + start) + bytes([start % 256])
    for k, _ in enumerate(rows[start:start + 3]):
        prog += bytes([start + k, 0x24 * k, 0x40 + k, 1 + k, 2, 3 + k, 4, 5, 6 + k, 7])
    put("opgraph", f"rows{start:03d}", prog)
