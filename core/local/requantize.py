"""GGUF weights in block types llama.cpp's CPU backend runs slowly, requantized once to Q8_0.

Q5_0 (most of Qwen's "Q4_K_M" files: their 896-wide rows do not fit K-quant blocks) converts to
Q8_0 exactly, in integers: a Q5_0 block is a scale and 32 five-bit values (q - 16) x d, and Q8_0
holds the same scale and the same integers in a byte each. No float pass, no second rounding, and
vectorized over every block at once (0.5B Qwen: ~25 s through gguf-py's float path, ~2 s here).
Q4_1 and Q5_1 (a scale and a minimum) have no exact Q8_0 form: they go through floats.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Legacy GGUF block types with no repacked ("extra buffer") kernels in llama.cpp's CPU backend: a
# file of them runs ~2x slower there than Q8_0 (measured on the embedded Q4_1 file, 2-core EPYC:
# prompt 236 -> 448 tok/s, decode 85 -> 121 tok/s).
SLOW_ON_CPU = ("Q4_1", "Q5_0", "Q5_1")
Q5_0_BYTES, Q8_0_BYTES = 22, 34  # per 32-value block: f16 scale (+ 4 bytes of high bits) + the values


def slow_on_cpu(reader: Any) -> bool:
    """Whether a GGUF file (its `gguf.GGUFReader`) has tensors in a type in SLOW_ON_CPU."""
    return any(tensor.tensor_type.name in SLOW_ON_CPU for tensor in reader.tensors)


def q5_0_to_q8_0(data: np.ndarray) -> np.ndarray:
    """Q5_0 blocks (bytes, rows x blocks*22) as the Q8_0 blocks of the same values (rows x blocks*34).
    Value i of a block is ((4 low bits of qs[i % 16], the low or high nibble) | bit i of qh << 4) - 16."""
    rows = data.shape[0] if data.ndim > 1 else 1
    blocks = np.ascontiguousarray(data).reshape(-1, Q5_0_BYTES)
    high = blocks[:, 2:6].copy().view("<u4") >> np.arange(32, dtype=np.uint32) & 1  # (blocks, 32)
    qs = blocks[:, 6:]
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=1)
    out = np.empty((len(blocks), Q8_0_BYTES), dtype=np.uint8)
    out[:, :2] = blocks[:, :2]  # the f16 scale, as it is
    out[:, 2:] = ((low | (high.astype(np.uint8) << 4)).astype(np.int16) - 16).astype(np.int8).view(np.uint8)
    return out.reshape(rows, -1)


def requantized(gguf_path: Path, cache_dir: Path) -> Path:
    """The GGUF file llama.cpp should serve: `gguf_path` itself, or, when its weights are in a type
    in SLOW_ON_CPU, a copy with those tensors as Q8_0 (8.5 bits/weight: the 4/5-bit values carry over,
    Q5_0's exactly), written once into `cache_dir`."""
    import gguf
    from gguf import GGMLQuantizationType as Q

    target = cache_dir / "requantized" / f"{gguf_path.stem}-{gguf_path.stat().st_size}-Q8_0.gguf"
    as_it_is = target.with_suffix(".as-it-is")  # a file found fast already: reading its tensors takes seconds
    if target.exists() or as_it_is.exists():
        return target if target.exists() else gguf_path
    reader = gguf.GGUFReader(gguf_path)
    if not slow_on_cpu(reader):
        target.parent.mkdir(parents=True, exist_ok=True)
        as_it_is.touch()
        return gguf_path
    log.info("requantizing %s once to Q8_0 into %s (llama.cpp's fast CPU kernels)", gguf_path.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=".staging-", suffix=".gguf")
    os.close(fd)
    try:
        architecture = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
        writer = gguf.GGUFWriter(staging, architecture, endianess=reader.endianess)
        for field in reader.fields.values():  # every key as it is; the writer adds its own GGUF.* ones
            if field.name != gguf.Keys.General.ARCHITECTURE and not field.name.startswith("GGUF."):
                kind = field.types[0]
                sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
                writer.add_key_value(field.name, field.contents(), kind, sub_type=sub_type)
        for tensor in reader.tensors:
            if tensor.tensor_type == Q.Q5_0:
                writer.add_tensor(tensor.name, q5_0_to_q8_0(tensor.data), raw_dtype=Q.Q8_0)
            elif tensor.tensor_type.name in SLOW_ON_CPU:
                values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
                writer.add_tensor(tensor.name, gguf.quants.quantize(values, Q.Q8_0), raw_dtype=Q.Q8_0)
            else:
                writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(staging, target)  # atomic: a half-written file is never picked up
    finally:
        Path(staging).unlink(missing_ok=True)
    return target
