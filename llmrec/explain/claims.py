"""What a written reason claims, and whether the data backs every claim, on both sides.

A reason names items (their titles, `guard.TitleGuard`), states attributes (`facts.Attributes`),
numbers, and links ("people who watched A also watched B"). `ClaimCheck.check` returns a `Verdict`:
- **names**: only the recommended item and its evidence may be named, and the recommended item must be;
- **attributes**: each attribute stated (outside the named titles' own words) must be true of every
  item its sentence names (of the recommended item and every named item when the sentence names
  none): "both are horror films" about a horror film and a comedy is false, whichever side lacks it;
- **links**: wording about other people's choices ("people who", "fans of", "often also buy") is
  false when no named history item co-occurs with the recommended one;
- **numbers**: a number outside the titles must be a count or rank of the facts about what the
  reason names (a named item, a stated attribute);
- **vacuous**: no attribute, no named history item, no link: nothing a reader could check;
- **specific**: a true attribute shared with the history (a named or linked item, or one that recurs
  in the recent history), or a named history item with the fact that links them (chosen together,
  or how far the model's rank falls without it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmrec.explain.facts import Attributes, Facts
from llmrec.explain.guard import TitleGuard, display_title, short_title

OTHERS_CHOSE = re.compile(
    r"\b(people|person|others|fans|viewers|customers|buyers|shoppers|players|readers|users|those)\s+who\b"
    r"|\bfans\s+of\b|\b(often|usually|frequently)\s+(also\s+)?(watch|buy|like|enjoy|choose|pick|play|read|get)"
)
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
MARK = 0xE000  # Unicode private use: a named title's mark, neither a word nor a digit
MISSES_ITEM, EMPTY = "does not name the recommended item", "no reason written"


def falls(moves: tuple[int, int]) -> tuple[int, int, int]:
    """The numbers the model's attribution gives: its rank with the item, without it, and the fall."""
    return (moves[0], moves[1], moves[1] - moves[0])


@dataclass
class Verdict:
    false: list[str] = field(default_factory=list)  # false claims and names outside the allowed items
    vacuous: bool = False
    specific: bool = False
    attributes: set[str] = field(default_factory=set)  # the attributes the reason states
    named: list[str] = field(default_factory=list)  # the history items it names


class ClaimCheck:
    def __init__(self, guard: TitleGuard, attributes: Attributes, titles: dict[str, str]) -> None:
        self.guard, self.attributes, self.titles = guard, attributes, titles

    def check(self, reason: str, facts: Facts) -> Verdict:
        if len(reason.split()) < 3:
            return Verdict([EMPTY], vacuous=True)
        evidence = {e.item: e for e in facts.evidence}
        found = self.guard.mentions(reason)  # the costly step (fuzzy matching): once per reason
        verdict = Verdict(self.guard.violations(reason, [facts.item, *evidence], found))
        if not self.guard.cited(reason, [facts.item], found):
            verdict.false.append(MISSES_ITEM)
        verdict.named = self.guard.cited(reason, list(evidence), found)
        # each named title becomes one private-use mark: its own words are no claim ("The War"), its
        # full stops end no sentence ("L.A. Confidential"), and a sentence knows which items it names
        items = [facts.item, *verdict.named]
        marks = {}
        for n, item in enumerate(items):
            full = self.titles.get(item, "")
            for name in {display_title(full), short_title(full), full} - {""}:
                marks[name.lower()] = chr(MARK + n)
        text = reason.lower().replace("″", '"')  # names write a title's inch mark as ″ (`Explainer.name`)
        for name in sorted(marks, key=len, reverse=True):
            text = text.replace(name, f" {marks[name]} ")
        stated: set[str] = set()
        for sentence in SENTENCE_END.split(text):
            # an attribute is claimed of the items its sentence names (all of them if it names none)
            about = [i for n, i in enumerate(items) if chr(MARK + n) in sentence] or items
            said = self.attributes.mentioned(sentence)
            stated |= said
            for attribute in sorted(said):
                lacking = [i for i in about if attribute not in self.attributes[i]]
                if lacking:
                    names = ", ".join(short_title(self.titles.get(i, "")) or i for i in lacking)
                    verdict.false.append(f"claims {attribute} of {names}")
        verdict.attributes = stated
        links = OTHERS_CHOSE.search(text) is not None
        chosen_together = any(evidence[i].together > 0 for i in verdict.named)
        if links and not chosen_together:
            verdict.false.append("claims people chose them together, but no named item co-occurs with it")
        # a number belongs to what the reason says: how many chose a named item too, the model's
        # ranks with and without a named item, how many recent items have a stated attribute
        named = [evidence[i] for i in verdict.named]
        counts = {str(e.together) for e in named} | {str(n) for e in named if e.moves for n in falls(e.moves)}
        counts |= {str(n) for a, c, w in facts.recurring if a in stated for n in (c, w)}
        numbers = NUMBER.findall(text)
        verdict.false += [f"states the number {n}, which no fact gives" for n in numbers if n not in counts]
        verdict.vacuous = not (stated or verdict.named or links)
        shared = set().union(*(evidence[i].shared for i in evidence)) | {a for a, _, _ in facts.recurring}
        weighed = any(e.moves and str(falls(e.moves)[2]) in numbers for e in named)  # the fall, stated
        verdict.specific = bool(stated & shared) or (links and chosen_together) or weighed
        return verdict
