"""GGUF weights in block types llama.cpp's CPU backend runs slowly, requantized once to Q8_0.

Q5_0 (most of Qwen's "Q4_K_M" files: their 896-wide rows do not fit K-quant blocks) converts to
Q8_0 exactly, in integers: a Q5_0 block is a scale and 32 five-bit values (q - 16) x d, and Q8_0
holds the same scale and the same integers in a byte each. No float pass, no second rounding, and
vectorized over every block at once (0.5B Qwen: ~25 s through gguf-py's float path, ~2 s here).
Q4_1 and Q5_1 (a scale and a minimum) have no exact Q8_0 form: they go through floats.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGUFReader
from gguf import GGMLQuantizationType as Q

log = logging.getLogger(__name__)

# Legacy GGUF block types with no repacked ("extra buffer") kernels in llama.cpp's CPU backend: a
# file of them runs ~2x slower there than Q8_0 (measured on the embedded Q4_1 file, 2-core EPYC:
# prompt 236 -> 448 tok/s, decode 85 -> 121 tok/s).
SLOW_ON_CPU = ("Q4_1", "Q5_0", "Q5_1")
Q5_0_BYTES, Q8_0_BYTES = 22, 34  # per 32-value block: f16 scale (+ 4 bytes of high bits) + the values


def q5_0_to_q8_0(data: np.ndarray) -> np.ndarray:
    """Q5_0 blocks (bytes, rows x blocks*22) as the Q8_0 blocks of the same values (rows x blocks*34).
    Value i of a block is ((4 low bits of qs[i % 16], the low or high nibble) | bit i of qh << 4) - 16."""
    rows = data.shape[0] if data.ndim > 1 else 1
    blocks = np.ascontiguousarray(data).reshape(-1, Q5_0_BYTES)
    high = np.unpackbits(blocks[:, 2:6], axis=1, bitorder="little")  # bit i of qh, for value i
    qs = blocks[:, 6:]
    out = np.empty((len(blocks), Q8_0_BYTES), dtype=np.uint8)
    out[:, :2] = blocks[:, :2]  # the f16 scale, as it is
    values = out[:, 2:]
    values[:, :16], values[:, 16:] = qs & 0x0F, qs >> 4
    values |= high << 4
    values -= 16  # in bytes: 0..31 - 16 wraps to the int8 -16..15 Q8_0 holds
    return out.reshape(rows, -1)


def requantized(gguf_path: Path, cache_dir: Path) -> Path:
    """The GGUF file llama.cpp should serve: `gguf_path` itself, or, when its weights are in a type
    in SLOW_ON_CPU, a copy with those tensors as Q8_0 (8.5 bits/weight: the 4/5-bit values carry over,
    Q5_0's exactly), written once into `cache_dir`."""
    if (done := cached(gguf_path, cache_dir)) is not None:
        return done
    target = _target(gguf_path, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    layout = Layout.read(gguf_path)
    if not layout.slow_on_cpu():
        target.with_suffix(".as-it-is").touch()  # a file found fast already
        return gguf_path
    log.info("requantizing %s once to Q8_0 into %s (llama.cpp's fast CPU kernels)", gguf_path.name, target)
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=".staging-", suffix=".gguf")
    os.close(fd)
    try:
        layout.write_q8_0(Path(staging))
        os.replace(staging, target)  # atomic: a half-written file is never picked up
    finally:
        Path(staging).unlink(missing_ok=True)
    return target


def cached(gguf_path: Path, cache_dir: Path) -> Path | None:
    """What `requantized` gives, if a start before wrote it (or found the file fast already)."""
    target = _target(gguf_path, cache_dir)
    if target.exists():
        return target
    return gguf_path if target.with_suffix(".as-it-is").exists() else None


def _target(gguf_path: Path, cache_dir: Path) -> Path:
    return cache_dir / "requantized" / f"{gguf_path.stem}-{gguf_path.stat().st_size}-Q8_0.gguf"


def slow_on_cpu(gguf_path: Path) -> bool:
    """Whether a GGUF file has tensors in a type in SLOW_ON_CPU."""
    return Layout.read(gguf_path).slow_on_cpu()


# GGUF value types of a fixed size: their bytes (gguf-py's own table); the others are a string or an array
FIXED = {int(kind): np.dtype(scalar).itemsize for kind, scalar in GGUFReader.gguf_scalar_to_np.items()}


@dataclass
class Tensor:
    name: bytes
    dims: tuple[int, ...]
    kind: int  # GGMLQuantizationType
    offset: int  # from the start of the data

    @property
    def slow(self) -> bool:
        return Q(self.kind).name in SLOW_ON_CPU

    @property
    def written(self) -> Q:
        """Its type in tonebot's copy: Q8_0 if slow on CPU, else its own."""
        return Q.Q8_0 if self.slow else Q(self.kind)


@dataclass
class Layout:
    """A GGUF file as llama.cpp reads it (header, metadata, tensor infos, aligned data), parsed just
    far enough to rewrite its tensors: the metadata (~300,000 strings of vocabulary and merges in a
    Qwen file) is copied as bytes, not decoded (gguf-py's reader takes ~12 s to decode it)."""

    data: np.ndarray  # the file, memory-mapped
    metadata_end: int
    tensors: list[Tensor]
    alignment: int
    data_start: int

    @classmethod
    def read(cls, path: Path) -> Layout:
        data = np.memmap(path, dtype=np.uint8, mode="r")
        buf = data.data  # a memoryview of the mapped bytes
        if bytes(buf[:4]) != b"GGUF" or struct.unpack_from("<I", buf, 4)[0] < 2:
            raise ValueError(f"{path} is not a GGUF file of version 2 or later")
        n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
        at, alignment = 24, 32

        def string(at: int) -> tuple[bytes, int]:
            (n,) = struct.unpack_from("<Q", buf, at)
            return bytes(buf[at + 8 : at + 8 + n]), at + 8 + n

        def skip(kind: int, at: int) -> int:
            if kind in FIXED:
                return at + FIXED[kind]
            if kind == 8:
                return at + 8 + struct.unpack_from("<Q", buf, at)[0]
            item, count = struct.unpack_from("<IQ", buf, at)
            at += 12
            if item in FIXED:
                return at + FIXED[item] * count
            for _ in range(count):
                at = skip(item, at)
            return at

        for _ in range(n_kv):
            key, at = string(at)
            (kind,) = struct.unpack_from("<I", buf, at)
            if key == b"general.alignment":
                (alignment,) = struct.unpack_from("<I", buf, at + 4)
            at = skip(kind, at + 4)
        metadata_end, tensors = at, []
        for _ in range(n_tensors):
            name, at = string(at)
            (n_dims,) = struct.unpack_from("<I", buf, at)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, at + 4)
            kind, offset = struct.unpack_from("<IQ", buf, at + 4 + 8 * n_dims)
            tensors.append(Tensor(name, dims, kind, offset))
            at += 4 + 8 * n_dims + 12
        return cls(data, metadata_end, tensors, alignment, -(-at // alignment) * alignment)

    def slow_on_cpu(self) -> bool:
        return any(t.slow for t in self.tensors)

    def raw(self, tensor: Tensor) -> np.ndarray:
        """A tensor's bytes, one row (of dims[0] values) per row."""
        block, size = GGML_QUANT_SIZES[Q(tensor.kind)]
        rows, row_bytes = math.prod(tensor.dims[1:]), tensor.dims[0] // block * size
        start = self.data_start + tensor.offset
        return np.asarray(self.data[start : start + rows * row_bytes]).reshape(rows, row_bytes)

    def write_q8_0(self, path: Path) -> None:
        """This file with its SLOW_ON_CPU tensors as Q8_0: the header and metadata as they are, new
        tensor infos (types, offsets), each tensor's data aligned."""
        import gguf

        def nbytes(tensor: Tensor) -> int:  # of the tensor as written
            block, size = GGML_QUANT_SIZES[tensor.written]
            return math.prod(tensor.dims) // block * size

        pad = self.alignment
        with path.open("wb") as out:
            out.write(self.data[: self.metadata_end].tobytes())
            offset = 0
            for tensor in self.tensors:
                dims = tensor.dims
                out.write(struct.pack("<Q", len(tensor.name)) + tensor.name)
                out.write(struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, tensor.written, offset))
                offset += -(-nbytes(tensor) // pad) * pad
            out.write(b"\0" * (-out.tell() % pad))
            for tensor in self.tensors:  # converted one at a time: only one tensor's copy in memory
                raw, kind = self.raw(tensor), Q(tensor.kind)
                if kind == Q.Q5_0:
                    raw = q5_0_to_q8_0(raw)
                elif tensor.slow:
                    raw = gguf.quants.quantize(gguf.quants.dequantize(raw, kind), Q.Q8_0)
                out.write(raw.tobytes())
                out.write(b"\0" * (-raw.nbytes % pad))
