"""The in-process engine: a Transformers model on the CPU, its worker, and the one module
(`internals`) that touches Transformers internals. Importing this package needs torch."""

import os

# OpenMP's threads spin while they wait for work by default; on a CPU shared with any other busy
# process they then fight it for the cores, and one busy neighbour made replies 2-30x slower.
# Passive waiting costs nothing measurable alone (benchmarks/shared_cpu.py). Set before torch
# loads OpenMP; an OMP_WAIT_POLICY of your own wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
