"""Reasons for recommendations: facts first, then words, then every claim checked.

For each recommended item: pick the facts (`facts.py`: the history items that lead to it by
co-occurrence, shared attributes or the model's own leave-one-out attribution when the explainer has
the model's catalogue scores, and its attributes that recur in the recent history), state them
plainly (`statement`: fixed wordings, picked per request by a seeded hash, so the same request gets
the same words), and, with `explain.generator: llm`, let the language model say them as one sentence
(`prompts/explain.j2`; greedy, then `explain.retries` sampled redrafts). A draft is checked on both
sides (`claims.py`): it may name only the item and its evidence, every attribute it states must be
true of every item it names, a "people who" link needs a co-occurring item, and it must say something
checkable that links the item to the user. A draft that fails is redrafted and then replaced by the
plain statement. Catalogues without titles always get the statement, which names items by id.
`Explainer.stats` counts every event.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmrec.config import ExplainConfig
from llmrec.data import SplitData
from llmrec.explain.claims import EMPTY, MISSES_ITEM, ClaimCheck, Verdict
from llmrec.explain.evidence import CooccurrenceEvidence
from llmrec.explain.facts import RECENT, Attributes, Evidence, Facts, FactSelector
from llmrec.explain.guard import TitleGuard, short_title
from llmrec.generate import Recommendation
from llmrec.prompts import load_template

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# what a user did with an item, by the catalogue's noun (explain.item_verb overrides): past, participle
VERBS = {"movie": ("watched", "watched"), "film": ("watched", "watched"), "show": ("watched", "watched"),
         "book": ("read", "read"), "game": ("played", "played"), "product": ("bought", "bought"),
         "song": ("played", "played")}  # fmt: skip


@dataclass
class Explanation:
    reason: str
    evidence: list[Evidence]
    source: str  # "llm", "llm-retry" (a redraft passed the check) or "statement" (the plain facts)
    rejected: list[list[str]] = field(default_factory=list)  # findings, one list per discarded draft
    facts: Facts | None = None


def finding_kind(finding: str) -> str:
    """The check's findings in five kinds, for counting."""
    if finding in (MISSES_ITEM, EMPTY):
        return "misses_item"
    if finding.startswith("claims people"):
        return "false_link"
    if finding.startswith(("claims ", "states the number")):
        return "false_attribute"
    if finding.startswith("says nothing"):
        return "vacuous"
    return "invented_title"  # another catalogue title, or a quoted name outside the catalogue


def tidy(text: str) -> str:
    """The first paragraph of a generation, cut to at most two sentences."""
    text = text.strip().split("\n\n")[0].replace("\n", " ").strip()
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    return " ".join(sentences[:2]).strip()


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class Explainer:
    def __init__(
        self,
        model: PreTrainedModel | None,
        tokenizer: PreTrainedTokenizerBase,
        items: pd.DataFrame,
        evidence: CooccurrenceEvidence,
        cfg: ExplainConfig,
        scores: Callable[[list[list[str]]], torch.Tensor] | None = None,
        columns: dict[str, int] | None = None,
    ) -> None:
        """`scores`: the recommending model's catalogue scores for histories (rows) over items
        (`columns`: item -> column), for the leave-one-out attribution; None: no attribution."""
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.scores, self.columns = scores, columns or {}
        self.titles = dict(zip(items["item"], items["title"].fillna(""), strict=True))
        # several domains: the model ranks within the recommended item's domain, as it recommended
        self.item_domains = None
        if "domain" in items.columns:
            self.item_domains = dict(zip(items["item"], items["domain"], strict=True))
        self.has_titles = any(self.titles.values())
        self.attributes = Attributes(items)
        self.selector = FactSelector(evidence, self.attributes, self.titles)
        common = {w for a in self.attributes.vocabulary for w in a.split()}
        self.short = {i: short_title(t) for i, t in self.titles.items() if t}
        self.guard = TitleGuard(self.titles, common_words=common, short=self.short)
        self.claims = ClaimCheck(self.guard, self.attributes, self.titles)
        self.template, _ = load_template(cfg.template)
        noun = cfg.item_noun.lower()
        self.verb = (cfg.item_verb, cfg.item_verb) if cfg.item_verb else VERBS.get(noun, ("chose", "chosen"))
        self.stats: Counter[str] = Counter()

    @classmethod
    def for_split(
        cls,
        model: PreTrainedModel | None,
        tokenizer: PreTrainedTokenizerBase,
        split: SplitData,
        cfg: ExplainConfig,
        scores: Callable[[list[list[str]]], torch.Tensor] | None = None,
        columns: dict[str, int] | None = None,
    ) -> Explainer:
        """Co-occurrence from the split's training sequences only (targets never count)."""
        items = split.items
        evidence = CooccurrenceEvidence(split.users["train"].tolist(), items["item"].tolist())
        return cls(model, tokenizer, items, evidence, cfg, scores, columns)

    def moves(
        self, histories: list[list[str]], recommendations: list[list[Recommendation]]
    ) -> list[list[dict[str, tuple[int, int]]]]:
        """Leave one out: for each recommendation, each recent history item -> the model's rank of
        the recommended item with the whole history and without that item (1 = first). One batch
        of catalogue scores per call: each history, then it without each of its last 10 items."""
        if self.scores is None or not self.cfg.attribution:
            return [[{} for _ in recs] for recs in recommendations]
        rows: list[list[str]] = []
        domains: list[str] = []
        plan = []
        for history, recs in zip(histories, recommendations, strict=True):
            dropped = list(dict.fromkeys(reversed(history[-RECENT:])))
            plan.append((len(rows), dropped))
            rows.append(history)
            rows += [[h for h in history if h != d] for d in dropped]
            if self.item_domains is not None:  # a request's items are all of its domain
                domain = self.item_domains.get(recs[0].item) if recs else None
                domains += [domain or next(iter(self.item_domains.values()))] * (1 + len(dropped))
        scores = self.scores(rows) if self.item_domains is None else self.scores(rows, domains=domains)
        out = []
        for (start, dropped), recs in zip(plan, recommendations, strict=True):
            block = scores[start : start + 1 + len(dropped)]
            per_rec = []
            for rec in recs:
                column = self.columns.get(rec.item)
                if column is None:
                    per_rec.append({})
                    continue
                ranks = 1 + (block > block[:, column : column + 1]).sum(dim=1)
                per_rec.append({d: (int(ranks[0]), int(ranks[n + 1])) for n, d in enumerate(dropped)})
            out.append(per_rec)
        return out

    # --- the plain statement of the facts ----------------------------------------------------------

    def name(self, item: str) -> str:
        short = self.short.get(item, "")
        # an inch mark inside a quoted name ('Marathon 10" Caster') would end the quotes early
        return f'"{short.replace(chr(34), "″")}"' if short else f"{self.cfg.item_noun} {item}"

    def _pick(self, facts: Facts, history: list[str], options: int) -> int:
        """A wording per request, the same for the same request: a seeded hash, not a random draw."""
        key = f"{self.cfg.seed}|{facts.item}|{'|'.join(history[-3:])}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") % options

    def _has(self, attributes: list[str], both: bool) -> str:
        """What a shared attribute list says of one item or of both ("in its title", "in their titles")."""
        quoted = [f'"{a}"' for a in attributes[:3]]
        if self.attributes.kind == "word":
            return f"{_and(quoted)} in {'their titles' if both else 'its title'}"
        return _and(attributes[:3])

    def statement(self, facts: Facts, history: list[str]) -> str:
        """The facts in fixed words: at most two sentences, every claim true by construction. First
        the link to a history item (the model's own attribution, else people who chose both); then
        what the user's history has in common with the item (an attribute recurring in their recent
        history, else one the item shares with a linked history item), else the other link."""
        did, done = self.verb
        item, noun, pick = self.name(facts.item), self.cfg.item_noun, self._pick(facts, history, 3)
        words = self.attributes.kind == "word"
        weighed = facts.weighed
        by_model = by_people = in_common = None
        if weighed is not None:
            # how far it falls, not the ranks themselves: a mix (or a new batch) may show the item
            # at another place than the language model's own list, but the fall is the model's
            rank, without = weighed.moves
            places, other = f"{without - rank} places", self.name(weighed.item)
            by_model = [
                f"Without {other} in your history, the model would place {item} {places} lower.",
                f"{other} weighs most in this pick: without it, {item} would fall {places}.",
                f"The model picked {item} mostly because you {did} {other}: without it, it falls {places}.",
            ][pick]
        link = next((e for e in facts.evidence if e.together > 0), None)
        if link is not None:
            people = f"{link.together} {'person' if link.together == 1 else 'people'}"
            by_people = [
                f"{people} who {did} {self.name(link.item)} also {did} {item}.",
                f"You {did} {self.name(link.item)}; {people} who did also {did} {item}.",
                f"{item} was also {done} by {people} who {did} {self.name(link.item)}, as you did.",
            ][pick]
        sharing = weighed if weighed is not None and weighed.shared else None
        sharing = sharing or next((e for e in facts.evidence if e.shared), None)
        if facts.recurring:
            attribute, count, out_of = facts.recurring[0]
            what = f'have "{attribute}" in their titles' if words else f"are {attribute}"
            so = "does" if words else "is"
            in_common = f"{count} of the last {out_of} {noun}s you {did} {what}, as {item} {so}."
        elif sharing is not None:
            both = "both have" if words else "share"
            alone = not (by_model or by_people) and pick == 1
            other, shared = self.name(sharing.item), sharing.shared
            in_common = (
                f"Like {other}, which you {did}, {item} has {self._has(shared, both=False)}."
                if alone
                else f"{item} and {other}, which you {did}, {both} {self._has(shared, both=True)}."
            )
        first = by_model or by_people
        sentences = [s for s in (first, in_common or (by_people if first is by_model else None)) if s]
        if not sentences:
            return f"{item} comes from your history as a whole, not from one {noun} in it."
        return " ".join(sentences)

    # --- the model's words -------------------------------------------------------------------------

    def prompt(self, facts: Facts, history: list[str]) -> tuple[str, str]:
        """(model input, answer lead): the template's text after a line `[answer]` starts the answer."""
        did, _ = self.verb
        top = facts.evidence[0] if facts.evidence else None
        text = self.template.render(
            noun=self.cfg.item_noun,
            item=self.name(facts.item),
            facts=self.statement(facts, history),
            evidence=self.name(top.item) if top else "",
            verb=did,
        )
        question, _, lead = text.partition("[answer]")
        question, lead = question.strip(), lead.strip()
        if self.tokenizer.chat_template:
            chat = [{"role": "user", "content": question}]
            start = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        else:
            start = question + "\n"
        return start + lead, lead

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")  # chat models end turns with it
        if isinstance(end, int) and end != self.tokenizer.unk_token_id:
            ids.add(end)
        return sorted(i for i in ids if i is not None)

    def generate(self, prompts: list[tuple[str, str]], sample: bool) -> list[str]:
        """Reasons (answer lead + continuation, tidied) for (model input, lead) pairs."""
        tok, model, cfg = self.tokenizer, self.model, self.cfg
        side, tok.padding_side = tok.padding_side, "left"
        adapter_off = cfg.adapter == "disabled" and hasattr(model, "disable_adapter")
        out: list[str] = []
        sampling = {"do_sample": True, "temperature": 0.8, "top_p": 0.95} if sample else {"do_sample": False}
        limits = {"max_new_tokens": cfg.max_new_tokens, "eos_token_id": self._stop_ids()}
        was_training = model.training
        model.eval()
        try:
            for start in range(0, len(prompts), cfg.batch_size):
                batch = prompts[start : start + cfg.batch_size]
                enc = tok([p for p, _ in batch], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)  # fmt: skip
                with torch.inference_mode(), model.disable_adapter() if adapter_off else nullcontext():
                    ids = model.generate(**enc, pad_token_id=tok.pad_token_id, **limits, **sampling)
                new = ids[:, enc["input_ids"].shape[1] :]
                texts = tok.batch_decode(new, skip_special_tokens=True)
                out.extend(tidy(f"{lead} {t.strip()}") for (_, lead), t in zip(batch, texts, strict=True))
        finally:
            tok.padding_side = side
            model.train(was_training)
        return out

    def check(self, reason: str, facts: Facts) -> list[str]:
        """Why a draft may not be shown (empty when it may): false claims on either side, and a draft
        that links nothing to the user where the facts could."""
        verdict: Verdict = self.claims.check(reason, facts)
        findings = list(verdict.false)
        if verdict.vacuous or (facts.specific and not verdict.specific):
            findings.append("says nothing that links it to the user's history")
        return findings

    # --- the whole flow ----------------------------------------------------------------------------

    def explain(
        self, histories: list[list[str]], recommendations: list[list[Recommendation]]
    ) -> list[list[Explanation]]:
        """One explanation per recommendation, in the same nesting as `recommendations`."""
        t0 = time.perf_counter()
        moves = self.moves(histories, recommendations)
        jobs = [
            (u, r, self.selector.select(rec.item, history, self.cfg.evidence_items, moves[u][r]))
            for u, (history, recs) in enumerate(zip(histories, recommendations, strict=True))
            for r, rec in enumerate(recs)
        ]
        done: dict[tuple[int, int], Explanation] = {}
        use_llm = self.cfg.generator == "llm" and self.model is not None and self.has_titles
        pending = [job for job in jobs if use_llm and job[2].specific]
        rejected: dict[tuple[int, int], list[list[str]]] = {}
        torch.manual_seed(self.cfg.seed)  # redrafts sample: the same inputs give the same reasons
        for attempt in range(self.cfg.retries + 1 if pending else 0):
            prompts = [self.prompt(facts, histories[u]) for u, _, facts in pending]
            drafts = self.generate(prompts, sample=attempt > 0)
            still = []
            for job, draft in zip(pending, drafts, strict=True):
                u, r, facts = job
                findings = self.check(draft, facts)
                if findings:
                    rejected.setdefault((u, r), []).append(findings)
                    still.append(job)
                    for kind in {finding_kind(f) for f in findings}:
                        self.stats[f"rejected_{kind}"] += 1
                        if attempt == 0:
                            self.stats[f"first_draft_{kind}"] += 1
                else:
                    source = "llm" if attempt == 0 else "llm-retry"
                    done[(u, r)] = Explanation(draft, facts.evidence, source, rejected.get((u, r), []), facts)
            self.stats["drafts"] += len(pending)
            self.stats["drafts_rejected"] += len(still)
            if attempt == 0:
                self.stats["first_drafts_rejected"] += len(still)
            if attempt < self.cfg.retries:
                self.stats["regenerated"] += len(still)
            pending = still
        for u, r, facts in jobs:
            if (u, r) not in done:
                reason = self.statement(facts, histories[u])
                done[(u, r)] = Explanation(
                    reason, facts.evidence, "statement", rejected.get((u, r), []), facts
                )
                why = "no_facts" if not facts.specific else "after_check" if use_llm else "by_config"
                self.stats["statement"] += 1
                self.stats[f"statement_{why}"] += 1
        self.stats["explanations"] += len(jobs)
        self.stats["llm_explanations"] += sum(1 for e in done.values() if e.source != "statement")
        self.stats["seconds"] += time.perf_counter() - t0
        return [[done[(u, r)] for r in range(len(recs))] for u, recs in enumerate(recommendations)]

    def attach(
        self, histories: list[list[str]], recommendations: list[list[Recommendation]]
    ) -> list[list[Recommendation]]:
        """Fill each recommendation's `reason` and `evidence` (in place; returned for chaining)."""
        for recs, explanations in zip(recommendations, self.explain(histories, recommendations), strict=True):
            for rec, e in zip(recs, explanations, strict=True):
                rec.reason = e.reason
                rec.evidence = [
                    {"item": v.item, "title": v.title, "relation": v.relation, "together": v.together,
                     "shared": list(v.shared), "rank_without": v.moves[1] if v.moves else None}
                    for v in e.evidence
                ]  # fmt: skip
        return recommendations
