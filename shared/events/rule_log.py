"""Everything the rule log (``rules.events`` and its fast lane) carries."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from shared.events.changesets import ChangeSetDiscard, ChangeSetPromote, ChangeSetStage
from shared.events.rules import JurisdictionTree, RuleDelete, RuleUpsert

RulesTopicEvent = (
    RuleUpsert
    | RuleDelete
    | JurisdictionTree
    | ChangeSetStage
    | ChangeSetPromote
    | ChangeSetDiscard
)
"""Everything the rules topic carries."""

RULES_TOPIC_EVENT: TypeAdapter[RulesTopicEvent] = TypeAdapter(
    Annotated[RulesTopicEvent, Field(discriminator="kind")]
)
