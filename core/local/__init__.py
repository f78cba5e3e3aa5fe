"""The in-process engine: a Transformers model on the CPU, its worker, and the one module
(`internals`) that touches Transformers internals. Importing this package needs torch."""
