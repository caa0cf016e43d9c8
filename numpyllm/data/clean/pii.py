"""PII reduction: personal data in a text replaced by typed placeholders.

| kind          | placeholder     | what is matched                                              |
| ------------- | --------------- | ------------------------------------------------------------ |
| credentials   | `<CREDENTIALS>` | the ``user:password`` of a URL (``https://user:pw@host/``): the URL stays, the secret goes |
| e-mail        | `<EMAIL>`       | ``local@domain.tld``: RFC 5322's unquoted local part, a dotted domain, a 2+ letter TLD |
| credit card   | `<CREDIT_CARD>` | 13-19 digits, in one run or groups split by single spaces or hyphens, that pass the Luhn check and begin with an issuer prefix (Visa 4, Mastercard 51-55 and 2221-2720, Amex 34 and 37, Discover 6011, 644-649 and 65, JCB 3528-3589, Diners 300-305, 36, 38) |
| IP address    | `<IP_ADDRESS>`  | IPv4 (four numbers 0-255, no leading zeros, not inside a longer dotted run, not after "v" or "version") and IPv6 (that `ipaddress` accepts, with at least three groups or a full eight) |
| phone number  | `<PHONE>`       | ``+`` and a country code then 7-14 more digits; North American ``(555) 123-4567``, ``555-123-4567``, ``555.123.4567`` (optionally with 1 before); a national number starting with 0, in groups (``020 7946 0958``) or as one run of 10-11 digits (``07946095812``), unless "ISBN" comes just before |

They are applied in that order, each on the text the previous ones left, so that an
e-mail inside a URL's credentials, or a card number's digits, are not read again as
something else.

**The tricky negatives**, and why they stay: a date (``2021-03-04``, ``04/03/2021``) has
too few digits or the wrong grouping for a phone; a version (``v1.2.3.4``, ``version
10.0.0.1``, ``3.11.7``) is refused as an IPv4 by its "v"/"version" or its length (and
``section 8.1.2.2`` by its "section": found in the standard library's own text); a price
(``$1,299.99``) has separators no pattern takes; an ISBN (``978-0-306-40615-7``) is
grouped 3-1-3-5-1, which no phone pattern takes, and fails the card prefixes; a time
(``12:30:45``) is not a valid IPv6; a 16-digit order number fails Luhn nine times in ten.
``"0123456789"`` (a digit alphabet, common in code) is
no phone. Luhn alone would let one random 16-digit number in ten through as a card; the
issuer prefixes cut that to one in 37 (measured on random 16-digit strings).

Measured precision and recall on the labelled set of tests/clean/pii_labelled.jsonl are
in docs/cleaning.md (`evaluate_pii`).

>>> redact_pii("mail bob@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111")
('mail <EMAIL> or call <PHONE>, card <CREDIT_CARD>', {'email': 1, 'credit_card': 1, 'phone': 1})
"""
from __future__ import annotations

import ipaddress
from collections import Counter

import regex

__all__ = ["PII_KINDS", "PLACEHOLDERS", "luhn_valid", "find_pii", "redact_pii", "evaluate_pii"]

PII_KINDS = ("credentials", "email", "credit_card", "ip_address", "phone")
PLACEHOLDERS = {"credentials": "<CREDENTIALS>", "email": "<EMAIL>",
                "credit_card": "<CREDIT_CARD>", "ip_address": "<IP_ADDRESS>", "phone": "<PHONE>"}

# scheme://user:password@   (group "cred" is what is replaced)
_CREDENTIALS = regex.compile(
    r"(?i)\b[a-z][a-z0-9+.\-]{1,15}://(?P<cred>[^\s:/@<>\"']+:[^\s/@<>\"']*)@")
_EMAIL = regex.compile(
    r"(?<![\w.+\-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])")
# a run of digit groups split by single spaces or hyphens; cards are looked for inside it
_DIGIT_RUN = regex.compile(r"(?<![\d\-])\d+(?:[ \-]\d+)*")
_DIGITS = regex.compile(r"\d+")
_IPV4 = regex.compile(
    r"(?<![\w.])(?<!v)(?<![Vv]ersion )(?<![Ss]ection )(?<!§ ?)"
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?!\w|\.\d|-[A-Za-z])")
_IPV6 = regex.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)"
                      r"(?:\.\d{1,3}){0,3}(?![\w:])")
_PHONE = regex.compile(
    r"(?<![\w+\-.])(?<!\d )(?:"
    r"\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}"                        # +CC ...
    r"|(?:1[ .\-]?)?\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}"                 # (555) 123-4567
    r"|(?:1[ .\-])?\d{3}([.\-])\d{3}\1\d{4}"                          # 555-123-4567
    r"|0\d{1,4}[ \-]\d{3,4}[ \-]\d{3,4}"                              # 020 7946 0958
    r"|0[1-9]\d{8,9}"                                                 # 07946095812
    r"|0[1-9](?:[ .]\d\d){4}"                                          # 06 12 34 56 78
    r")(?![\w\-]|[.,/]\d)")
_CARD_PREFIX = regex.compile(r"4|5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)|3[47]"
                             r"|6011|64[4-9]|65|35(?:2[89]|[3-8]\d)|30[0-5]|36|38")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum: double every second digit from the right (minus 9 above 9);
    the sum must be a multiple of 10.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(match: str) -> bool:
    digits = match.replace(" ", "").replace("-", "")
    # groups of at least 3 digits: "12 34 56..." (a list of numbers) is not a card
    groups = regex.split(r"[ \-]", match)
    if len(groups) > 1 and min(map(len, groups)) < 3:
        return False
    return (13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) is not None
            and luhn_valid(digits))


def _card_spans(text: str):
    """Cards inside runs of digit groups: from each group, the longest run of whole groups
    that is a card ("v1.2.3 4111 1111 1111 1111 2021": the 16 digits, not the 3 before
    or the year after)."""
    for run in _DIGIT_RUN.finditer(text):
        groups = [g.span() for g in _DIGITS.finditer(run.group())]
        i = 0
        while i < len(groups):
            for j in range(min(len(groups), i + 19) - 1, i - 1, -1):    # <= 19 groups
                start, end = run.start() + groups[i][0], run.start() + groups[j][1]
                # (no ISBN exception: an ISBN has 10 or 13 digits, and 978/979 is no issuer)
                if _is_card(text[start:end]):
                    yield start, end
                    i = j
                    break
            i += 1


def _is_ipv6(match: str) -> bool:
    groups = [g for g in match.split(":") if g]
    n_groups = len(groups) + ("." in match)        # an IPv4 tail is two groups' worth
    if n_groups < 3 and match.count(":") < 7:
        return False
    if not any(c.isdigit() for c in match):     # "dead:beef:cafe" might be; "a::b::c" is not
        return len(groups) >= 4
    try:
        ipaddress.IPv6Address(match)
    except ValueError:
        return False
    return True


def _is_phone(match: str) -> bool:
    digits = "".join(c for c in match if c.isdigit())
    if digits in "01234567890" or digits in "98765432109876543210":
        return False             # "0123456789": a digit alphabet in code, not a number
    if match.startswith("+"):
        return 8 <= len(digits) <= 15
    return 10 <= len(digits) <= 12


def _after_isbn(text: str, start: int) -> bool:
    # "ISBN 0306406152", "ISBN-13: 978..." : a book's number, whatever its digits
    return "isbn" in text[max(0, start - 12):start].lower()


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """The PII spans of `text` as (kind, start, end), in the text's order, after each
    kind is masked for the next (as `redact_pii` applies them)."""
    spans, masked = [], list(text)

    def mask(start, end):
        masked[start:end] = "\0" * (end - start)

    current = text
    for kind in PII_KINDS:
        for start, end in _matches(kind, current):
            spans.append((kind, start, end))
            mask(start, end)
        current = "".join(masked)
    return sorted(spans, key=lambda s: s[1])


def _matches(kind: str, text: str):
    if kind == "credentials":
        for m in _CREDENTIALS.finditer(text):
            yield m.span("cred")
    elif kind == "email":
        for m in _EMAIL.finditer(text):
            yield m.span()
    elif kind == "credit_card":
        yield from _card_spans(text)
    elif kind == "ip_address":
        v6 = [m.span() for m in _IPV6.finditer(text) if _is_ipv6(m.group())]
        yield from v6
        for m in _IPV4.finditer(text):       # not the tail of an IPv6 (::ffff:10.0.0.1)
            if not any(a <= m.start() < b for a, b in v6):
                yield m.span()
    elif kind == "phone":
        for m in _PHONE.finditer(text):
            if _is_phone(m.group()) and not _after_isbn(text, m.start()):
                yield m.span()


def redact_pii(text: str, kinds=PII_KINDS) -> tuple[str, dict]:
    """`text` with each PII span replaced by its placeholder, and how many of each kind
    were replaced (kinds with none are left out)."""
    unknown = set(kinds) - set(PII_KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}: expected some of {PII_KINDS}")
    counts = Counter()
    for kind, start, end in sorted(find_pii(text), key=lambda s: -s[1]):
        if kind in kinds:
            text = text[:start] + PLACEHOLDERS[kind] + text[end:]
            counts[kind] += 1
    return text, {k: counts[k] for k in PII_KINDS if counts[k]}


def evaluate_pii(examples) -> dict:
    """Precision and recall per kind on labelled examples: an iterable of
    ``{"text": str, "pii": [[kind, "the exact substring"], ...]}``. A found span is a
    true positive when a labelled span of its kind has exactly its text; returns
    ``{kind: {"tp", "fp", "fn", "precision", "recall"}}`` and the same under "all"."""
    tally = {k: Counter() for k in (*PII_KINDS, "all")}
    for ex in examples:
        text = ex["text"]
        truth = Counter((kind, s) for kind, s in ex["pii"])
        found = Counter((kind, text[a:b]) for kind, a, b in find_pii(text))
        for key in truth | found:
            tp = min(truth[key], found[key])
            for k in (key[0], "all"):
                tally[k]["tp"] += tp
                tally[k]["fp"] += found[key] - tp
                tally[k]["fn"] += truth[key] - tp
    out = {}
    for k, c in tally.items():
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        out[k] = {"tp": tp, "fp": fp, "fn": fn,
                  "precision": tp / (tp + fp) if tp + fp else 1.0,
                  "recall": tp / (tp + fn) if tp + fn else 1.0}
    return out
