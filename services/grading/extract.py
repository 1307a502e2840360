"""Which option a reply chose: OPO's answer patterns (zh and en), or the option letters' logprobs.

Order, as in OPO's grading: a letter at the very start of the reply; then explicit answer phrases
("答案是B", "答案：选项C", "答案选D", "选D", "The answer is (A)"; the last one counts, as
in OPO); then the only option letter that stands
alone in the reply; then the only option *text* the reply quotes (labels such as Taboo/Normal/
Expected). Anything else is unparseable (None), counted as invalid, never guessed.

Forms OPO's patterns misread, handled here: a letter written in lowercase ("b", "答案是c", "the
answer is d.") where no English word can be meant; two letters given as one answer ("A、B",
"答案是A或B", "A and C") are no single choice (None); a letter that begins a name ("A公司",
"B市") is not an option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_PHRASES = (
    # zh (OPO's patterns, plus their common variants)
    r"答案\s*(?:是|为|应(?:该)?(?:是|为)|应选|选)\s*[:：]?\s*选?项?\s*[(（]?\s*({L})",
    r"答案\s*[:：]\s*选?项?\s*[(（]?\s*({L})",
    r"^选(?:项|择)?\s*[(（]?\s*({L})",
    r"(?:应|应该|应当)选(?:择)?\s*[(（]?\s*({L})",
    r"选(?:项|择)\s*[(（]?\s*({L})\s*[)）]?\s*(?:是|为)?(?:正确|对)",
    r"正确(?:的)?(?:答案|选项)\s*(?:是|为|[:：])\s*[(（]?\s*({L})",
    # en
    r"\banswer\s*(?:is|would be|should be)?\s*[:：]?\s*(?:option\s*)?[(\[]?\s*({L})\b",
    r"\b(?:option|choice)\s*[(\[]?({L})[)\]]?\s*is\s*(?:the\s*)?(?:correct|right|best)",
    r"\bI (?:would )?(?:choose|pick|select)\s*(?:option\s*)?[(\[]?({L})\b",
)

_ARTICLE = re.compile(r"A\s+(?!(?:is|was|would|should|and|or|nor|but)\b)[a-z]")
"""English "A" used as the article, not as option A."""
_SEPARATOR = r"(?:$|[\s.．。:：)）\]】、,，*])"
"""What may follow an option letter that is the answer itself."""
_OR_ANOTHER = r"\s*(?:、|,|，|/|或|和|与|及|\bor\b|\band\b|&)\s*[(（]?\s*{L}(?![A-Za-z])"
"""A second letter given with the first: two answers, no single choice."""
_NAME = re.compile(r"[\u4e00-\u9fff](?<![项选])")
"""A CJK character right after a letter: "A公司", "B市" (but "A项", "B选项" name options)."""


def extract_choice(text: str, options: Mapping[str, str]) -> str | None:
    """The option letter the reply chose, or None when it cannot be read."""
    letters = "".join(options)
    if not text.strip() or not letters:
        return None
    reply = text.strip()
    letter_class = f"[{re.escape(letters)}]"
    letter_only = f"(?-i:{letter_class})"  # "a" in "an answer" is not option A
    lower = f"(?-i:[{re.escape(letters.lower())}])"
    # A lowercase letter counts where no English word can be meant: alone, or before
    # punctuation ("b", "b.", "(c)"), never before a space ("a person").
    lower_alone = rf"{lower}(?=$|[.．:：)）\]】、,，*。])"
    either = f"(?:{letter_only}|{lower_alone})"
    another = _OR_ANOTHER.format(L=either)

    def chosen(match: re.Match[str]) -> str | None:
        """The letter of ``match`` (group 1), None when a second letter follows it."""
        if re.match(another, reply[match.end(1) :], re.IGNORECASE):
            return None
        return match.group(1).upper()

    # 1. The reply starts with the letter: "B", "B.", "(B)", "B、...", "**B**", "C is right"
    #    (not "A项错误" nor the article in "A person should..."; "A、B" is two answers).
    start = re.match(rf"^[\s*(\[（【]*({letter_class}(?={_SEPARATOR})|{lower_alone})", reply)
    if start and not _ARTICLE.match(reply, start.start(1)):
        return chosen(start)
    # 2. An explicit answer phrase; the last one in the reply wins, as in OPO (a reply that
    #    corrects itself ends with its final answer). "答案是A或B" chooses nothing.
    hits = []
    for pattern in _PHRASES:
        for match in re.finditer(pattern.format(L=either), reply, re.IGNORECASE | re.M):
            hits.append((match.start(), match))
    if hits:
        return chosen(max(hits, key=lambda hit: hit[0])[1])
    # 3. Exactly one option letter standing alone (not inside a word, not a name's start).
    alone = {
        m.group(0)
        for m in re.finditer(rf"(?<![A-Za-z]){letter_class}(?![A-Za-z])", reply)
        if not _ARTICLE.match(reply, m.start()) and not _NAME.match(reply, m.end())
    }
    if len(alone) == 1:
        return alone.pop()
    # 4. Exactly one option text quoted in the reply.
    quoted = [
        letter
        for letter, option in options.items()
        if option.strip() and re.search(rf"(?<!\w){re.escape(option.strip())}(?!\w)", reply, re.I)
    ]
    if len(quoted) == 1:
        return quoted[0]
    return None


def choice_from_logprobs(
    logprobs: Mapping[str, float] | None, letters: Sequence[str]
) -> str | None:
    """The most likely option letter as the first token (OPO's scoring of open models). A
    letter's tokens are its spellings: "B", " B", "b" and " b" (a model that answers in
    lowercase, or after a space, chose that letter too); the likeliest spelling counts."""
    if not logprobs:
        return None
    scored: dict[str, float] = {}
    for token, logprob in logprobs.items():
        letter = token.strip().upper()
        if letter in letters and logprob > scored.get(letter, float("-inf")):
            scored[letter] = logprob
    if not scored:
        return None
    return max(scored, key=lambda letter: scored[letter])
