"""Puka's benchmarks, run as modules from the repository root (``python -m bench.run``, or
``hatch run bench:<script>``): see bench/README.md. Not shipped; `bench.engine` imports the fake
broker from `testkit`, which the tests use too."""
