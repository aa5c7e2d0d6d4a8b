"""The faithfulness guard: which catalogue titles does a generated reason mention?

A reason may name only the recommended item and its evidence. `TitleGuard.violations` finds every
other catalogue title in the text, matching normalised word sequences (case, accents, punctuation,
a trailing "(1995)", MovieLens' "Usual Suspects, The" word order and a leading article ignored),
plus fuzzy matches (rapidfuzz ratio >= `fuzzy_cutoff`) for titles of two or more words, so a
misspelt title is caught too. Text inside quotes that matches no allowed title is reported as
well: a quoted name that is not in the catalogue is an invented item.

One-word titles ("Heat", "Speed") are often common words; they count only when capitalised
mid-sentence and not among `common_words` (the catalogue's genre/attribute names: "War"), or when
written in quotes as a title ('"The War"').
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz, process

_ARTICLES = ("the", "a", "an", "les", "la", "le", "il", "das", "der", "die", "el", "l'")
_TRAILING_YEAR = re.compile(r"\s*\(\s*\d{4}\s*\)\s*$")
_TRAILING_PARENS = re.compile(r"\s*\([^()]*\)\s*$")
_MOVED_ARTICLE = re.compile(r"^(.*?),\s*(the|a|an|les|la|le|il|das|der|die|el|l')$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9]+")
Mentions = list[tuple[str, int, int]]  # (normalised title, first word, end word)
_DETAILS = re.compile(r",\s|\s[-–|]\s|\s\(|\s(?:with|for)\s", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“”«»*]([^\"“”«»*\n]{3,80})[\"“”«»*]")


def display_title(title: str) -> str:
    """A catalogue title as a person writes it: "Usual Suspects, The (1995)" -> "The Usual Suspects"."""
    text = _TRAILING_YEAR.sub("", title.strip())
    while _TRAILING_PARENS.search(text) and _TRAILING_PARENS.sub("", text):  # (a.k.a. ...) parts
        text = _TRAILING_PARENS.sub("", text)
    moved = _MOVED_ARTICLE.match(text)
    return f"{moved.group(2)} {moved.group(1)}" if moved else text


def short_title(title: str, most_words: int = 7) -> str:
    """The name a person would use for a long product title: its display form cut before the first
    list of details (a comma, a dash, parentheses, "with"/"for"), at most `most_words` words.
    "AcuRite 00613 Humidity Monitor with Indoor Thermometer, ..." -> "AcuRite 00613 Humidity Monitor"."""
    text = display_title(title)
    if len(text.split()) <= most_words and len(text) <= 50:  # short already ("The Good, the Bad and...")
        return text
    cut = _DETAILS.split(text, maxsplit=1)[0].strip()
    words = (cut if len(cut.split()) >= 2 else text).split()
    return " ".join(words[:most_words])


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def normalise(title: str) -> str:
    """The matching key of a title: lower-case words of its display form, leading article dropped."""
    words = [w.lower() for w in _WORD.findall(_fold(display_title(title)))]
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


class TitleGuard:
    def __init__(
        self,
        titles: dict[str, str],
        fuzzy_cutoff: float = 90.0,
        min_chars: int = 3,
        common_words: set[str] = frozenset(),
        short: dict[str, str] | None = None,
    ) -> None:
        """`common_words`: words that are not a mention on their own, such as genre names. `short`:
        the short names explanations use for long titles (`short_title`), which name the item too."""
        self.common = {w.lower() for w in common_words}
        self.keys: dict[str, set[str]] = {}  # normalised title -> items
        self.key_of: dict[str, set[str]] = {}  # item -> its normalised names
        for names in (titles, short or {}):
            for item, title in names.items():
                key = normalise(title) if title else ""
                if len(key) >= min_chars:
                    self.keys.setdefault(key, set()).add(item)
                    self.key_of.setdefault(item, set()).add(key)
        self.multiword = [k for k in self.keys if " " in k]
        self.max_words = max((k.count(" ") + 1 for k in self.keys), default=1)
        self.fuzzy_cutoff = fuzzy_cutoff

    def mentions(self, text: str) -> Mentions:
        """(normalised title, first word, end word) for each catalogue title found in `text`."""
        words = _WORD.findall(_fold(text))
        lower = [w.lower() for w in words]
        found: list[tuple[str, int, int]] = []
        windows: list[tuple[str, int, int]] = []
        for n in range(1, min(self.max_words, len(words)) + 1):
            for start in range(len(words) - n + 1):
                key = " ".join(lower[start : start + n])
                if key in self.keys:
                    if n == 1 and (key in self.common or not (words[start][0].isupper() and start > 0)):
                        continue  # a common word, or capitalised only because it starts the text
                    found.append((key, start, start + n))
                elif n >= 2 and len(key) >= 8:
                    windows.append((key, start, start + n))
        for quoted in _QUOTED.finditer(text):  # a quoted one-word title names the item, common or not
            key = normalise(quoted.group(1))
            if key in self.keys and " " not in key:
                start = len(_WORD.findall(_fold(text[: quoted.start(1)])))
                found.append((key, start, start + len(_WORD.findall(_fold(quoted.group(1))))))
        if windows and self.multiword:
            scores = process.cdist(
                [w[0] for w in windows], self.multiword, scorer=fuzz.ratio, score_cutoff=self.fuzzy_cutoff
            )
            for (_, start, end), row in zip(windows, scores, strict=True):
                if row.max() > 0:
                    found.append((self.multiword[int(row.argmax())], start, end))
        return found

    def cited(self, text: str, items: list[str], found: Mentions | None = None) -> list[str]:
        """Which of `items` the text names (by title). `found`: `mentions(text)`, if already known."""
        keys = {key for key, _, _ in (self.mentions(text) if found is None else found)}
        return [i for i in items if self.key_of.get(i, set()) & keys]

    def violations(self, text: str, allowed_items: list[str], found: Mentions | None = None) -> list[str]:
        """Titles in `text` other than the allowed items' (and quoted names outside the catalogue).
        `found`: `mentions(text)`, if already known."""
        allowed = set().union(*(self.key_of.get(i, set()) for i in allowed_items))
        found = self.mentions(text) if found is None else found
        # words covered by an allowed title may also spell a shorter title ("Heat" in "In the Heat
        # of the Night"); those are part of the allowed name, not a mention of their own
        covered = {w for key, s, e in found if key in allowed for w in range(s, e)}
        bad = [
            key for key, s, e in found if key not in allowed and not any(w in covered for w in range(s, e))
        ]
        for quoted in _QUOTED.findall(text):
            key = normalise(quoted)
            if not quoted.strip()[:1].isupper() or len(key.split()) < 2:
                continue  # not written like a title
            if key not in self.keys and not _close_to(key, allowed):
                bad.append(f"not in the catalogue: {quoted.strip()}")
        return sorted(set(bad))


def _close_to(key: str, allowed: set[str], cutoff: float = 85.0) -> bool:
    return any(fuzz.ratio(key, a) >= cutoff or key in a or a in key for a in allowed)
