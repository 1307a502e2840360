"""The rule memory in Redis: schema (keys, index) and queries, shared by ingest and retrieval.

Layers as in RedisVL: ``schema`` (what is stored and indexed) -> ``index`` (create, migrate, wait)
-> ``query`` (KNN with filters). The write path lives in the ingest service, the search path in
the retrieval service.
"""
