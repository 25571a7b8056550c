"""Test doubles shared by the test suite (`tests/`) and the benchmarks (`bench/`).

Not a package of Puka's (it is not under `packages/` and is never built or installed): it is
imported from the repository root, where pytest (`pythonpath` in pyproject.toml) and
``python -m bench.<script>`` find it without editing `sys.path`.

- `testkit.fake_broker`: `FakeBroker`, an in-memory, sans-I/O AMQP 0-9-1 server that behaves
  like RabbitMQ, the other half of a byte pair with `puka.Engine`.
"""
