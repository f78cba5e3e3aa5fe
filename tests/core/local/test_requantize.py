"""Q5_0 -> Q8_0 in integers: the same values, block for block (what llama.cpp serves for a Qwen
"Q4_K_M" file is exactly what the file holds)."""

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

from core.local.requantize import q5_0_to_q8_0


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
