"""Personal data shown to people: resident ID numbers and mobile numbers masked in any text.

``130***********1234`` keeps the province and the last four characters of an ID number,
``138****0000`` the network prefix and the last four digits of a mobile number: enough for a clerk
to tell two people apart, not enough to reach them.
"""

from __future__ import annotations

import re

_RESIDENT_ID = re.compile(  # area, birth date, sequence, check character; not inside a longer code
    r"(?<![0-9A-Za-z])\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
    r"(?![0-9A-Za-z])"
)
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_resident_id(value: str) -> str:
    """``130***********1234``."""
    return (
        f"{value[:3]}{'*' * (len(value) - 7)}{value[-4:]}" if len(value) > 7 else "*" * len(value)
    )


def mask_phone(value: str) -> str:
    """``138****0000`` (a landline keeps its last four digits only)."""
    digits = value.strip()
    if len(digits) == 11 and digits.isdigit():
        return f"{digits[:3]}****{digits[-4:]}"
    return f"{'*' * max(len(digits) - 4, 0)}{digits[-4:]}"


def mask_text(text: str) -> str:
    """Every resident ID number and mobile number in ``text``, masked."""
    text = _RESIDENT_ID.sub(lambda m: mask_resident_id(m.group(0)), text)
    return _MOBILE.sub(lambda m: mask_phone(m.group(0)), text)


def mask_values(value: object) -> object:
    """``value`` as JSON-ready data (dicts, lists, strings, numbers) with every string masked.

    Numbers stay numbers, so a document keeps its shape; an integer that reads as an ID or mobile
    number becomes its masked text. Anything else is shown as its ``str``, masked.
    """
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        shown = mask_text(str(value))
        return value if shown == str(value) else shown
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(str(k)): mask_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_values(v) for v in value]
    return mask_text(str(value))
