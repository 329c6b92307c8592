"""nosetrack's benchmarks, run as modules from the repository's root: `python -m bench.run`, `bench.soak`.

Every script that publishes a figure writes it with the commit and the machine's load beside it
(`bench.stamp`); bench/README.md says which command gives which figure.
"""
