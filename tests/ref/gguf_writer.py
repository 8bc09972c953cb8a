"""gguf_writer.py — a minimal GGUF v3 writer for the reference scripts.

Written from the GGUF format description (llama.cpp's docs/gguf.md), not from
orion's writer, so files made here test orion's reader independently:

    magic "GGUF", u32 version = 3, u64 n_tensors, u64 n_kv
    n_kv x { string key, u32 value_type, value }
    n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
    zero padding to `alignment`, then the tensor data, each tensor starting at
    a multiple of `alignment` from the start of the data section.

Strings are u64 length + UTF-8 bytes (no NUL); arrays are u32 element type,
u64 count, then the elements. Everything is little-endian. ne[0] is the
length of a row, so a PyTorch (out, in) matrix has ne = [in, out]. Only f32
and f16 tensors are written (the types the references need).
"""
import struct

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
           BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
TENSOR_F32 = 0
TENSOR_F16 = 1


def _string(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _value(vtype, value, elem_type=None):
    if vtype == STRING:
        return _string(value)
    if vtype == ARRAY:
        out = [struct.pack("<IQ", elem_type, len(value))]
        if elem_type == STRING:
            out.extend(_string(v) for v in value)
        else:
            fmt = "<%d%s" % (len(value), _SCALAR[elem_type][1])
            out.append(struct.pack(fmt, *value))
        return b"".join(out)
    return struct.pack(_SCALAR[vtype], value)


class Writer:
    def __init__(self, alignment=32):
        self.kv = []       # (key, bytes of type + value)
        self.tensors = []  # (name, ne, type, bytes)
        self.alignment = alignment
        if alignment != 32:
            self.add("general.alignment", U32, alignment)

    def add(self, key, vtype, value, elem_type=None):
        self.kv.append((key, struct.pack("<I", vtype) + _value(vtype, value, elem_type)))

    def add_tensor(self, name, ne, data, ttype=TENSOR_F32):
        """ne: GGUF order (row length first); data: raw little-endian bytes."""
        self.tensors.append((name, list(ne), ttype, bytes(data)))

    def write(self, path):
        a = self.alignment
        head = [b"GGUF", struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))]
        for key, val in self.kv:
            head.append(_string(key) + val)
        offset = 0
        offsets = []
        for name, ne, ttype, data in self.tensors:
            offsets.append(offset)
            head.append(_string(name) + struct.pack("<I", len(ne)) +
                        struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", ttype, offset))
            offset += (len(data) + a - 1) // a * a
        meta = b"".join(head)
        with open(path, "wb") as f:
            f.write(meta)
            f.write(b"\0" * ((-len(meta)) % a))
            for (name, ne, ttype, data), off in zip(self.tensors, offsets):
                f.write(data)
                f.write(b"\0" * ((-len(data)) % a))
