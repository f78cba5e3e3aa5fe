"""The in-process engines: llama.cpp for GGUF files (`llamacpp`, no torch), and a Transformers model
on the CPU (`engine`, its worker, and `internals`, the one module that touches Transformers
internals), both reading the mood with a `head` when one fits."""
