"""Q5_0 -> Q8_0 in integers: the same values, block for block (what llama.cpp serves for a Qwen
"Q4_K_M" file is exactly what the file holds); the file rewritten with its metadata copied as bytes."""

from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

from core.local.requantize import q5_0_to_q8_0, requantized, slow_on_cpu


def test_q5_0_blocks_become_q8_0_blocks_of_exactly_the_same_values() -> None:
    rng = np.random.default_rng(7)
    values = (rng.standard_normal((3, 128)) * rng.uniform(0.01, 5, (3, 1))).astype(np.float32)
    values[1, :32] = 0.0  # an all-zero block
    q5 = gguf.quants.quantize(values, Q.Q5_0)
    q8 = q5_0_to_q8_0(q5)
    assert q8.shape == (3, 128 // 32 * 34) and q8.dtype == np.uint8
    expected = gguf.quants.dequantize(q5, Q.Q5_0)
    assert np.array_equal(gguf.quants.dequantize(q8, Q.Q8_0), expected)
    assert not np.array_equal(expected, values)  # five bits: the values are not the floats, and stay so


def test_a_file_is_rewritten_with_its_metadata_as_it_was_and_its_slow_tensors_as_q8_0(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    weights = {name: rng.standard_normal((4, 64)).astype(np.float32) for name in ("a", "b", "c")}
    source = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(source, "llama")
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "hello", "世界"] * 1000)
    writer.add_uint32("general.alignment", 64)
    writer.add_tensor("a", gguf.quants.quantize(weights["a"], Q.Q5_0), raw_dtype=Q.Q5_0)
    writer.add_tensor("b", gguf.quants.quantize(weights["b"], Q.Q4_1), raw_dtype=Q.Q4_1)
    writer.add_tensor("c", weights["c"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    served = requantized(source, tmp_path / "cache")
    assert served != source and served.exists()
    assert requantized(source, tmp_path / "cache") == served  # written once
    before, after = gguf.GGUFReader(source), gguf.GGUFReader(served)
    assert {f.name: f.contents() for f in after.fields.values()} == {
        f.name: f.contents() for f in before.fields.values()
    }
    a, b, c = after.tensors
    assert [t.tensor_type for t in (a, b, c)] == [Q.Q8_0, Q.Q8_0, Q.F32]
    assert np.array_equal(
        gguf.quants.dequantize(a.data, Q.Q8_0), gguf.quants.dequantize(before.tensors[0].data, Q.Q5_0)
    )
    b_before = gguf.quants.dequantize(before.tensors[1].data, Q.Q4_1)
    assert np.abs(gguf.quants.dequantize(b.data, Q.Q8_0) - b_before).max() < 0.02 * np.abs(b_before).max()
    assert np.array_equal(c.data, weights["c"])
    assert not slow_on_cpu(served) and slow_on_cpu(source)
