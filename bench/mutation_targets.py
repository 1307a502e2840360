"""What ``bench.mutation`` mutates: each module and the tests that own it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    tests: tuple[str, ...]
    python: bool = True
    """False: only the comparisons of the module's Lua scripts are mutated."""


LUA = "tests/integration/test_lua_scripts.py"
GATEWAY_AUTH = "tests/unit/test_gateway_auth.py"
ADMISSION = "tests/unit/test_gateway_admission.py"
SECOND_LINES = "tests/integration/test_second_lines.py"

TARGETS: dict[str, Target] = {
    # The gateway: auth and the key cache, admin checks, scope, open-request caps, rate limit.
    "services/gateway/auth.py": Target((GATEWAY_AUTH,)),
    "services/gateway/authenticated.py": Target((GATEWAY_AUTH, ADMISSION)),
    "services/gateway/key_scope.py": Target((GATEWAY_AUTH,)),
    "services/gateway/capacity.py": Target((ADMISSION,)),
    "services/gateway/ratelimit.py": Target((LUA,)),
    # Retrieval: the retriever's options, the query and the search, the budget.
    "shared/memory/retriever.py": Target(("tests/unit/test_retriever.py",)),
    "shared/memory/query.py": Target(("tests/unit/test_search.py", "tests/unit/test_hybrid.py")),
    "shared/memory/search.py": Target(
        (
            "tests/unit/test_search.py",
            "tests/unit/test_hybrid.py",
            SECOND_LINES,
            "tests/integration/test_search_paths.py",
        )
    ),
    "shared/memory/jurisdictions.py": Target(("tests/unit/test_jurisdictions.py",)),
    "shared/memory/lexical.py": Target(("tests/unit/test_hybrid.py",)),
    "services/generation/prompts/opo.py": Target(
        ("tests/unit/test_opo_protocol.py", "tests/unit/test_prompts.py")
    ),
    # Provenance: attribution of answers, the rules' history.
    "shared/attribution.py": Target(("tests/unit/test_attribution.py",)),
    "shared/memory/history.py": Target(
        (
            "tests/integration/test_rule_lifecycle.py::"
            "test_a_history_keeps_its_newest_versions_and_never_a_version_twice",
            "tests/integration/test_rule_lifecycle.py::"
            "test_history_entries_are_frozen_deletes_carry_no_content_and_trees_none",
        )
    ),
    # Ingest's guards and the memory's versioned writes.
    "shared/guards.py": Target(("tests/unit/test_guards.py",)),
    "shared/rulefiles.py": Target(
        ("tests/unit/test_rulefiles.py", "tests/unit/test_rule_file_strictness.py")
    ),
    "shared/memory/writer.py": Target(("tests/unit/test_memory_plan.py", SECOND_LINES)),
    "shared/memory/trees.py": Target((LUA,)),
    "shared/dlq.py": Target(("tests/unit/test_dlq.py", "tests/unit/test_fuzz_decode.py")),
    "shared/signing.py": Target(("tests/unit/test_signing.py",)),
    # Generation and grading.
    "services/generation/prompts/fencing.py": Target(
        ("tests/unit/test_prompt_injection.py", "tests/unit/test_prompts.py")
    ),
    "services/generation/inflight.py": Target(("tests/unit/test_inflight.py",)),
    "services/grading/store.py": Target((SECOND_LINES, LUA)),
    "services/grading/research/store.py": Target((LUA,), python=False),
    "services/grading/extract.py": Target(("tests/unit/test_grading_extract.py",)),
    "services/grading/stats.py": Target(("tests/unit/test_grading_stats.py",)),
}
"""Each module under test and the tests that own it."""
