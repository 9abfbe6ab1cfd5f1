"""onepass benchmark suite: onepass side by side with the libraries users pick today.

Run it with ``python -m benchmarks`` (or ``python benchmarks/run.py``); see
``benchmarks/README.md``. Every case runs in a fresh subprocess
(``python -m benchmarks.worker CASE --params JSON``) that prints one JSON line, so the
peak RSS it reports belongs to that case alone. The runner collects those lines and
renders Markdown tables with ratios to the anchors.
"""
