"""Public test doubles (never imported by a service): an OpenAI-compatible scripted endpoint
(``openai_server``), the keyword judge behind it (``judge``), scripted generation backends
(``backends``), an embedder of a known speed (``embedders``) and a topic reader outside any
consumer group (``topics``). The local broker, Redis and the tiny model are the dev stack's:
``shared/devstack``."""
