"""The facts an explanation may state, chosen from data the run has, before any word is written.

An item's **attributes** are the short facts its data states about it:
- catalogues whose item text is a list of traits (MovieLens genres "Comedy, Romance", P5 attribute
  ids, tags) use those traits;
- other catalogues (products with long titles and descriptions) use the distinctive words of the
  title: words of three letters or more, not stop words, found in at least 2 titles and at most
  `max_share` of them ("stanley", "staple", "nitrile"), so a shared word says something specific.
Words are compared in a light singular form ("comedies" = "comedy", "staples" = "staple").

For a recommended item and a user's history, `FactSelector.select` picks the case for it:
- **links**: up to k history items that lead to it, scored by co-occurrence (`evidence.py`: the
  cosine, and how many users chose both) plus the attributes they share with it, the more recent
  item first on ties; an item with neither is no link;
- **recurring**: the item's attributes that repeat in the user's recent history ("4 of your last 10
  movies are comedies");
- **weight**: the model's own attribution, when the explainer has the model's catalogue scores: the
  recent history item without which the language model would rank the item much lower (leave one
  out: "without X, #31 instead of #2"), which comes first among the links.
Everything selected is true of the data by construction; `claims.py` checks what a writer then says.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from llmrec.explain.evidence import CooccurrenceEvidence
from llmrec.explain.guard import normalise, short_title

WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
# words that say nothing of an item on their own: function words, units, fillers, praise (a word
# list reads better as text than as 150 quoted strings)
STOP_WORDS = frozenset(
    """a about after all also an and any are as at be been but by can com each for from has have in
    inch inches into is it its made more new no not of on one or our out over pack per set so such
    than that the their them these they this those to too two up use used very was were when which
    while who will with without you your pcs piece pieces count size lbs oz ounce mm cm ft yd kg ml
    product quality great best good high low perfect ideal easy premium only may know make little
    special right time lot deal first amazing world short wear design deluxe value original
    ingredient manufacturer brand item kit
    history model rank pick weigh mostly instead without people person bought watched played chose
    read title whole last place lower fall picked""".split()  # noqa: SIM905 (the last line: the statements' own words)
)
RECENT = 10  # how far back "recurring" looks: the user's last 10 items


def singular(word: str) -> str:
    """A light singular form, enough to match "comedies"/"comedy" and "staples"/"staple"."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def traits(text: str) -> list[str]:
    """Short descriptors from an item's text when it is a list of them: MovieLens genres, P5
    attribute ids, tags ("" or prose gives none)."""
    if text.startswith("attributes "):
        return [f"attribute {a}" for a in text.split()[1:]]
    parts = [t.strip() for t in text.split(",")]
    return parts if parts and all(0 < len(t) <= 30 for t in parts) else []


@dataclass
class Evidence:
    """A history item that leads to the recommended item, and why."""

    item: str
    title: str
    relation: float  # co-occurrence cosine with the recommended item, in [0, 1]
    together: int = 0  # users who chose both (training sequences)
    shared: list[str] = field(default_factory=list)  # attributes both items have
    back: int = 0  # how many items ago the user chose it (0: the latest)
    moves: tuple[int, int] | None = None  # the model's ranks of the item (with it, without it)


@dataclass
class Facts:
    """The case for one recommended item: its attributes, the history items that lead to it, and
    its attributes that recur in the user's recent history (attribute, count, out of)."""

    item: str
    title: str
    attributes: list[str]
    evidence: list[Evidence]
    recurring: list[tuple[str, int, int]]

    @property
    def weighed(self) -> Evidence | None:
        """The history item the model's ranking leans on most, if one clearly carries it."""
        return next((e for e in self.evidence if e.moves), None)

    @property
    def specific(self) -> bool:
        """Something checkable links the item to this user: a co-occurring or attribute-sharing
        history item, or an attribute that recurs in their recent history."""
        return bool(self.evidence or self.recurring)


class Attributes:
    """Each item's attributes (see the module docstring) and the catalogue's vocabulary of them."""

    def __init__(self, items: pd.DataFrame, max_share: float = 0.05) -> None:
        texts = dict(zip(items["item"], items["text"].fillna(""), strict=True))
        titles = dict(zip(items["item"], items["title"].fillna(""), strict=True))
        listed = {i: traits(t) for i, t in texts.items()}
        with_text = [i for i, t in texts.items() if t]
        self.kind = (
            "trait" if with_text and sum(bool(listed[i]) for i in with_text) >= len(with_text) / 2 else "word"
        )
        if self.kind == "trait":
            self.of = {i: list(dict.fromkeys(listed[i])) for i in texts}
        else:
            words = {i: list(dict.fromkeys(singular(w) for w in WORD.findall(t))) for i, t in titles.items()}
            words = {i: [w for w in ws if len(w) >= 3 and w not in STOP_WORDS] for i, ws in words.items()}
            df = Counter(w for ws in words.values() for w in ws)
            most = max(2, int(max_share * len(words)))
            # an ordinary word ("together", "single") is in many more descriptions than titles; a word
            # that names a kind of thing ("thermometer", "nitrile") is in about as many
            prose = Counter(w for t in texts.values() for w in {singular(x) for x in WORD.findall(t)})
            kept = {w for w in df if 2 <= df[w] <= most and prose[w] <= 4 * df[w]}
            # rarer words first: a word few items share says more about them
            self.of = {
                i: sorted((w for w in ws if w in kept), key=lambda w: df[w]) for i, ws in words.items()
            }
        self.vocabulary = {a for attrs in self.of.values() for a in attrs}
        # how an attribute is found in a sentence: its words, each in any light plural form
        self.patterns = {a: _pattern(a) for a in self.vocabulary}

    def __getitem__(self, item: str) -> list[str]:
        return self.of.get(item, [])

    def mentioned(self, text: str) -> set[str]:
        """The catalogue attributes a text states (case and plural ignored)."""
        low = text.lower()
        if self.kind == "word":  # one word each: look the text's words up
            return {w for w in (singular(x) for x in WORD.findall(low)) if w in self.vocabulary}
        return {a for a, pattern in self.patterns.items() if pattern.search(low)}


def _pattern(attribute: str) -> re.Pattern[str]:
    words = []
    for w in attribute.lower().split():
        stem = re.escape(w[:-1]) + "(?:y|ies)" if w.endswith("y") else re.escape(w) + "(?:s|es)?"
        words.append(stem)
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])")


class FactSelector:
    """Picks `Facts` for (recommended item, history) from co-occurrence and item attributes."""

    def __init__(
        self, evidence: CooccurrenceEvidence, attributes: Attributes, titles: dict[str, str]
    ) -> None:
        self.evidence, self.attributes, self.titles = evidence, attributes, titles

    def _names(self, item: str) -> set[str]:
        title = self.titles.get(item, "")
        return {normalise(title), normalise(short_title(title))} - {""}

    def select(
        self, item: str, history: list[str], k: int, moves: dict[str, tuple[int, int]] | None = None
    ) -> Facts:
        """`moves`: history item -> the model's (rank with it, rank without it) of `item`; the one
        that moves it most, if it at least doubles the rank and by 3 places, becomes a link."""
        own = self.attributes[item]
        # another listing under the same name (a colour of the same filament) is no link: a reader
        # could not tell the two apart
        same = self._names(item)
        latest = {h: pos for pos, h in enumerate(history) if h != item and not (self._names(h) & same)}
        candidates = list(latest)
        relations = self.evidence.relations(item, candidates)
        links = []
        for h, rel in zip(candidates, relations, strict=True):
            shared = [a for a in self.attributes[h] if a in own]
            if rel <= 0 and not shared:
                continue
            together = self.evidence.together(item, h) if rel > 0 else 0
            links.append(Evidence(h, self.titles.get(h, ""), round(float(rel), 4), together, shared,
                                  len(history) - 1 - latest[h]))  # fmt: skip
        # co-occurrence first (what users did), then shared attributes as a share of the item's own
        links.sort(key=lambda e: (-(e.relation + 0.5 * len(e.shared) / max(1, len(own))), e.back))
        weighed = max(
            ((h, m) for h, m in (moves or {}).items() if h in latest), key=lambda x: x[1][1], default=None
        )
        if weighed and weighed[1][1] >= max(2 * weighed[1][0], weighed[1][0] + 3):
            h, m = weighed
            found = next((e for e in links if e.item == h), None)
            if found is None:
                found = Evidence(h, self.titles.get(h, ""), 0.0, back=len(history) - 1 - latest[h])
            else:
                links.remove(found)
            found.moves = m
            links.insert(0, found)
        recent = [h for h in history[-RECENT:] if h != item]
        counts = Counter(a for h in recent for a in set(self.attributes[h]) if a in own)
        recurring = [(a, n, len(recent)) for a, n in counts.most_common() if n >= 2][:2]
        return Facts(item, self.titles.get(item, ""), own, links[:k], recurring)
