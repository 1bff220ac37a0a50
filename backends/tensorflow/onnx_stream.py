"""Serialising an ONNX model whose weights are written one tensor at a time.

protobuf serialises only whole messages: a ModelProto with AssembleNet-50's 143 MiB of
weights, its bytes and the checker's parse of them held the weights three times (issue 12).
A message's encoding is its fields in field-number order, each a tag, a length and the
payload, so the model can be written in pieces: the model's fields up to ``graph`` (7), the
graph's header, the graph's fields up to ``initializer`` (5), one entry per weight tensor,
the graph's fields after it, the model's fields after ``graph``. Only the tensor being
written is serialised at any time, and each is dropped once written.

Written by hand because neither protobuf nor onnx has a streaming encoder (onnx's external
data format splits the file, which the compile's single ``model.onnx`` must not).
`stream_model` checks at run time that its pieces concatenate to protobuf's own encoding of
the model without the tensors (else it serialises the whole message, as protobuf does), and
a test checks a whole file against ``SerializeToString``.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

__all__ = ["stream_model"]

_GRAPH = 7  # ModelProto.graph
_INITIALIZER = 5  # GraphProto.initializer


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _header(number: int, length: int) -> bytes:
    """Tag (wire type 2, length-delimited) and length of a message field."""
    return _varint(number << 3 | 2) + _varint(length)


def _split(message, number: int) -> tuple[bytes, bytes]:
    """The encodings of ``message``'s fields numbered up to ``number`` and after it."""
    before, after = type(message)(), type(message)()
    before.CopyFrom(message)
    after.CopyFrom(message)
    for field, _ in message.ListFields():
        (after if field.number <= number else before).ClearField(field.name)
    return (before.SerializeToString(deterministic=True),
            after.SerializeToString(deterministic=True))


def stream_model(model, tensors: list, out: BinaryIO) -> str:
    """Write ``model`` with ``tensors`` (TensorProtos) appended to its graph's initializers,
    exactly as ``SerializeToString(deterministic=True)`` of that model encodes it; return
    the SHA-256 of the bytes written. ``tensors`` is emptied as they are written, so the
    caller's list releases each tensor once it is in the file."""
    digest = hashlib.sha256()

    def put(data: bytes) -> None:
        out.write(data)
        digest.update(data)

    graph = model.graph
    g_before, g_after = _split(graph, _INITIALIZER)
    shell = type(model)()
    shell.CopyFrom(model)
    shell.ClearField("graph")
    m_before, m_after = _split(shell, _GRAPH)
    if (g_before + g_after != graph.SerializeToString(deterministic=True)
            or m_before + m_after != shell.SerializeToString(deterministic=True)):
        # this protobuf runtime does not encode in field order: let it encode the whole
        kept = len(graph.initializer)
        graph.initializer.extend(tensors)
        tensors.clear()
        put(model.SerializeToString(deterministic=True))
        del graph.initializer[kept:]  # the caller's model as it was
        return digest.hexdigest()
    sizes = [t.ByteSize() for t in tensors]
    g_length = (len(g_before) + len(g_after)
                + sum(len(_header(_INITIALIZER, s)) + s for s in sizes))
    put(m_before)
    put(_header(_GRAPH, g_length))
    put(g_before)
    tensors.reverse()
    while tensors:
        data = tensors.pop().SerializeToString(deterministic=True)
        put(_header(_INITIALIZER, len(data)))
        put(data)
        del data
    put(g_after)
    put(m_after)
    return digest.hexdigest()
