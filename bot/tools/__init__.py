"""Tooling apart from serving: benchmarks, evaluations, fitting a mood head, the soak, the labelled
data sets and batch classification (`tonebot bench | eval | train-head | eval-escalation | eval-answers
| classify`). Nothing here is imported by `tonebot serve`."""
