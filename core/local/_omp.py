"""Imported by the Transformers engine before torch loads OpenMP (libgomp).

OpenMP's threads spin while they wait for work by default; on a CPU shared with any other busy
process they then fight it for the cores, and one busy neighbour made Transformers' replies 2-30x
slower. Passive waiting costs torch nothing measurable alone (benchmarks/shared_cpu.py). Not for
llama.cpp, which runs one OpenMP region per graph and pays a wake-up for each: with PASSIVE its
decode fell from ~130 to ~39 tok/s on the embedded model. libgomp reads the policy once, when it
loads, so a process that starts with one engine keeps that engine's policy. An OMP_WAIT_POLICY of
your own wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
