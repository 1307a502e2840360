"""The order a batch is grounded and published in: tenant by tenant, the tenant with the least
text to embed first. Embedding costs about as much as the text is long, so one tenant's long
questions (each up to ``MAX_QUERY_CHARS``) no longer hold back another tenant's short one that
was fetched in the same batch: its group is embedded, searched and published first."""

from __future__ import annotations

from collections.abc import Sequence

from shared import events


def lightest_tenant_first(requests: Sequence[events.ChatRequest]) -> list[list[int]]:
    """Indexes into ``requests``, grouped by tenant; groups by the characters they embed
    (ties: the tenant seen first), each group in batch order."""
    groups: dict[str, list[int]] = {}
    weight: dict[str, int] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.tenant, []).append(index)
        weight[request.tenant] = weight.get(request.tenant, 0) + len(request.query)
    order = sorted(groups, key=lambda tenant: (weight[tenant], groups[tenant][0]))
    return [groups[tenant] for tenant in order]
