"""Load tools: locust (run.py, locustfile.py), wrk (bench.py), the side-by-side with the
article's stack (anchors.py) and the in-process profiler (profile_request.py).

Run from the repository root as modules (`python -m loadtests.run`, as the Makefile does), so
that they import each other, and the project, as packages; the Makefile targets are in
docs/loadtests.md and docs/performance.md.
"""
