"""What a key may search: a key made with a default scope and without the admin right is bound
to that scope (``tenants create-key --scope``), e.g. a kiosk key for one province. Its requests
may name jurisdictions within the scope, or none (then the scope itself is searched); naming
one outside it, or ``any_jurisdiction``, is refused (403). Admin keys and keys without a scope
take the scope as a default only."""

from __future__ import annotations

from collections.abc import Sequence

from services.gateway.errors import forbidden
from shared.memory.labels import normalize_label
from shared.tenants import ApiKey


def searched_scope(
    key: ApiKey, jurisdictions: Sequence[str], any_jurisdiction: bool
) -> tuple[tuple[str, ...], bool]:
    """The jurisdictions and ``any_jurisdiction`` a request of ``key`` searches under."""
    named = tuple(jurisdictions)
    if key.admin or not key.default_scope:
        return named or key.default_scope, any_jurisdiction
    scope = ", ".join(key.default_scope)
    if any_jurisdiction:
        raise forbidden(f"This key is bound to its scope ({scope[:300]}): any_jurisdiction "
                        "needs an admin key or a key without a scope.")  # fmt: skip
    allowed = {normalize_label(s) for s in key.default_scope}
    outside = [name for name in named if normalize_label(name) not in allowed]
    if outside:
        raise forbidden(f"{outside[0][:80]!r} is outside this key's scope ({scope[:300]}).")
    return named or key.default_scope, False
