"""What a written reason claims, and whether the data backs every claim, on both sides.

A reason names items (their titles, `guard.TitleGuard`), states attributes (`facts.Attributes`),
numbers, and links ("people who watched A also watched B"). `ClaimCheck.check` returns a `Verdict`:
- **names**: only the recommended item and its evidence may be named, and the recommended item must be;
- **attributes**: each attribute stated (outside the named titles' own words) must be true of the
  recommended item *and* of every history item the reason names: "both are horror films" about a
  horror film and a comedy is false, whichever side lacks it;
- **links**: wording about other people's choices ("people who", "fans of", "often also buy") is
  false when no named history item co-occurs with the recommended one;
- **numbers**: a number outside the titles must be one of the facts' counts or ranks;
- **vacuous**: no attribute, no named history item, no link: nothing a reader could check;
- **specific**: a true attribute shared with the history (a named or linked item, or one that recurs
  in the recent history), or a named history item with the fact that links them (chosen together,
  or the model's rank without it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmrec.explain.facts import Attributes, Facts
from llmrec.explain.guard import TitleGuard, display_title, short_title

OTHERS_CHOSE = re.compile(
    r"\b(people|others|fans|viewers|customers|buyers|shoppers|players|readers|users|those)\s+who\b"
    r"|\bfans\s+of\b|\b(often|usually|frequently)\s+(also\s+)?(watch|buy|like|enjoy|choose|pick|play|read|get)"
)
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")
MISSES_ITEM, EMPTY = "does not name the recommended item", "no reason written"


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
        text = reason.lower().replace("″", '"')  # names write a title's inch mark as ″ (`Explainer.name`)
        for item in (facts.item, *verdict.named):  # a title's own words are no claim ("The War")
            full = self.titles.get(item, "")
            for name in {display_title(full), short_title(full), full} - {""}:
                text = text.replace(name.lower(), " ")
        stated = self.attributes.mentioned(text)
        verdict.attributes = stated
        for attribute in sorted(stated):
            lacking = [i for i in (facts.item, *verdict.named) if attribute not in self.attributes[i]]
            if lacking:
                names = ", ".join(short_title(self.titles.get(i, "")) or i for i in lacking)
                verdict.false.append(f"claims {attribute} of {names}")
        links = OTHERS_CHOSE.search(text) is not None
        if links and not any(evidence[i].together > 0 for i in verdict.named):
            verdict.false.append("claims people chose them together, but no named item co-occurs with it")
        counts = {str(e.together) for e in facts.evidence} | {
            str(n) for _, c, w in facts.recurring for n in (c, w)
        }
        counts |= {str(n) for e in facts.evidence if e.moves for n in e.moves}
        verdict.false += [
            f"states the number {n}, which no fact gives" for n in NUMBER.findall(text) if n not in counts
        ]
        verdict.vacuous = not (stated or verdict.named or links)
        shared = set().union(*(evidence[i].shared for i in evidence)) | {a for a, _, _ in facts.recurring}
        linked = links and any(evidence[i].together > 0 for i in verdict.named)  # the link, stated
        numbers = set(NUMBER.findall(text))
        weighed = any(evidence[i].moves and str(evidence[i].moves[1]) in numbers for i in verdict.named)
        verdict.specific = bool(stated & shared) or linked or weighed
        return verdict
