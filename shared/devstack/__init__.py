"""The local development stack: broker and Redis launched from PyPI wheels (``servers``) and a
random-weight tiny chat model built offline (``tiny_model``), for ``alignstream stack``, the
demo, the tests and the benchmarks. Production uses Kafka, Redis Stack and real models."""
