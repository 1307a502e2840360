"""Which prompt language a text calls for (the OPO templates exist in zh and en)."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def language_of(text: str) -> str:
    """``zh`` when the text has Chinese characters, else ``en``."""
    return "zh" if _CJK.search(text) else "en"


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` belongs to a script written without spaces between words (CJK
    ideographs, kana, hangul): a name in such a script may sit inside a longer run of text."""
    code = ord(ch)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals .. unified ideographs, kana, bopomofo
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # CJK extensions B..
    )
