"""Reasons for recommendations, grounded in the user's history and checked before they are shown.

For each recommended item: pick evidence (history items that co-occur with it, `evidence.py`),
render `prompts/explain.j2`, let the LLM write at most two sentences (greedy; the base model unless
`explain.adapter: enabled`), and run the guard (`guard.py`). A reason that names any other
catalogue title, or a quoted name outside the catalogue, is regenerated (sampled, `explain.retries`
times) and then replaced by a fixed-wording reason built from the evidence. So is a reason that
claims a trait (a genre, a tag from the item table) that the recommended item does not have.
Catalogues without titles always get the fixed wording, which names items by id, never by an
invented name.
`Explainer.stats` counts every event.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmrec.config import ExplainConfig
from llmrec.explain.evidence import CooccurrenceEvidence, Evidence
from llmrec.explain.guard import TitleGuard, display_title
from llmrec.generate import Recommendation
from llmrec.prompts import load_template

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SHARED_CLAIM = re.compile(
    r"\b(same|similar|shared?|common)\s+(genres?|categor(y|ies)|styles?|themes?|types?|kinds?|tags?)\b"
)


@dataclass
class Explanation:
    reason: str
    evidence: list[Evidence]
    source: str  # "llm", "llm-retry" (passed the guard after regeneration) or "template"
    rejected: list[list[str]] = field(default_factory=list)  # guard findings, one list per discarded draft


def traits(text: str) -> set[str]:
    """Short descriptors of an item from its text: MovieLens genres, P5 attribute ids, tags."""
    if text.startswith("attributes "):
        return {f"attribute {a}" for a in text.split()[1:]}
    return {t.strip() for t in text.split(",") if 0 < len(t.strip()) <= 30}


MISSES_ITEM, EMPTY = "does not name the recommended item", "no reason written"


def finding_kind(finding: str) -> str:
    """The guard's findings in four kinds, for counting."""
    if finding in (MISSES_ITEM, EMPTY):
        return "misses_item"
    if finding.startswith("claims trait"):
        return "unsupported_trait"
    return "invented_title"  # another catalogue title, or a quoted name outside the catalogue


def tidy(text: str) -> str:
    """The first paragraph of a generation, cut to at most two sentences."""
    text = text.strip().split("\n\n")[0].replace("\n", " ").strip()
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    return " ".join(sentences[:2]).strip()


class Explainer:
    def __init__(
        self,
        model: PreTrainedModel | None,
        tokenizer: PreTrainedTokenizerBase,
        items: pd.DataFrame,
        evidence: CooccurrenceEvidence,
        cfg: ExplainConfig,
    ) -> None:
        self.model, self.tokenizer, self.evidence, self.cfg = model, tokenizer, evidence, cfg
        self.titles = dict(zip(items["item"], items["title"].fillna(""), strict=True))
        self.details = dict(zip(items["item"], items["text"].fillna(""), strict=True))
        self.has_titles = any(self.titles.values())
        vocabulary = {t for text in self.details.values() for t in traits(text)}
        self.guard = TitleGuard(self.titles, common_words={w for t in vocabulary for w in t.split()})
        # traits a reason may claim ("both are horror movies") are checked against the items' own
        self.trait_patterns = {t: re.compile(rf"(?<!\w){re.escape(t.lower())}(?!\w)") for t in vocabulary}
        self.template, _ = load_template(cfg.template)
        self.stats: Counter[str] = Counter()

    @classmethod
    def for_split(cls, model, tokenizer, split, cfg: ExplainConfig) -> Explainer:
        """Evidence from the split's training sequences only (targets never count)."""
        items = split.items
        evidence = CooccurrenceEvidence(split.users["train"].tolist(), items["item"].tolist(), split.titles())
        return cls(model, tokenizer, items, evidence, cfg)

    # --- wording -----------------------------------------------------------------------------------

    def name(self, item: str) -> str:
        title = self.titles.get(item, "")
        return display_title(title) if title else f"{self.cfg.item_noun} {item}"

    def template_reason(self, item: str, evidence: list[Evidence]) -> str:
        """Fixed wording from the evidence: names only the item, its evidence and shared traits."""
        noun = self.cfg.item_noun
        if not evidence:
            return (
                f"{self.name(item)} was ranked highly from your history as a whole; none of your past "
                f"{noun}s co-occurs with it in the training data."
            )
        cited = " and ".join(self.name(e.item) for e in evidence)
        them = "them" if len(evidence) > 1 else "it"
        reason = f"Because you chose {cited}: people who chose {them} often also chose {self.name(item)}."
        shared = self.shared_traits(item, [e.item for e in evidence])
        if shared:
            reason += f" They share {', '.join(sorted(shared))}."
        return reason

    def shared_traits(self, item: str, others: list[str]) -> set[str]:
        return traits(self.details.get(item, "")) & set().union(
            *(traits(self.details.get(o, "")) for o in others)
        )

    def prompt(self, item: str, evidence: list[Evidence]) -> tuple[str, str]:
        """(model input, answer lead): the template's text after a line `[answer]` starts the answer."""

        def view(i: str) -> dict:
            return {"title": self.name(i), "details": self.details.get(i, "")}

        text = self.template.render(
            noun=self.cfg.item_noun,
            item=view(item),
            evidence=[view(e.item) for e in evidence],
            shared=sorted(self.shared_traits(item, [e.item for e in evidence])),
        )
        question, _, lead = text.partition("[answer]")
        question, lead = question.strip(), lead.strip()
        if self.tokenizer.chat_template:
            chat = [{"role": "user", "content": question}]
            start = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        else:
            start = question + "\n"
        return start + lead, lead

    # --- generation --------------------------------------------------------------------------------

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
        sampling = {"do_sample": True, "temperature": 0.8, "top_p": 0.95} if sample else {}
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

    def check(self, reason: str, item: str, evidence: list[Evidence]) -> list[str]:
        """Guard findings for a draft; a draft that is empty or misses the recommended item fails too."""
        if len(reason.split()) < 3:
            return [EMPTY]
        allowed = [item, *(e.item for e in evidence)]
        found = self.guard.mentions(reason)  # the costly step (fuzzy matching): once per draft
        findings = self.guard.violations(reason, allowed, found)
        if not self.guard.cited(reason, [item], found):
            findings.append(MISSES_ITEM)
        return findings + self.unsupported_traits(reason, item, allowed)

    def unsupported_traits(self, reason: str, item: str, named: list[str]) -> list[str]:
        """Catalogue traits (genres, tags) the reason claims that the recommended item lacks: the
        reason is about that item ("both are horror movies"), so its traits are what may be said."""
        text = reason.lower()
        for i in named:  # a title may contain a trait word ("The War"): it is no claim
            text = text.replace(self.name(i).lower(), " ")
        own = traits(self.details.get(item, ""))
        findings = sorted(f"claims trait {t}" for t, pattern in self.trait_patterns.items()
                          if t not in own and pattern.search(text))  # fmt: skip
        # "the same genre" is a claim too, untrue when the item shares no trait with what is cited
        if _SHARED_CLAIM.search(text) and not self.shared_traits(item, [i for i in named if i != item]):
            findings.append("claims trait shared with the history, but they share none")
        return findings

    def explain(
        self, histories: list[list[str]], recommendations: list[list[Recommendation]]
    ) -> list[list[Explanation]]:
        """One explanation per recommendation, in the same nesting as `recommendations`."""
        t0 = time.perf_counter()
        jobs = [
            (u, r, rec.item, self.evidence.select(rec.item, history, self.cfg.evidence_items))
            for u, (history, recs) in enumerate(zip(histories, recommendations, strict=True))
            for r, rec in enumerate(recs)
        ]
        done: dict[tuple[int, int], Explanation] = {}
        use_llm = self.cfg.generator == "llm" and self.model is not None and self.has_titles
        pending = [job for job in jobs if use_llm and job[3]]
        rejected: dict[tuple[int, int], list[list[str]]] = {}
        torch.manual_seed(self.cfg.seed)  # regenerations sample: the same inputs give the same reasons
        for attempt in range(self.cfg.retries + 1 if pending else 0):
            drafts = self.generate([self.prompt(item, ev) for _, _, item, ev in pending], sample=attempt > 0)
            still = []
            for job, draft in zip(pending, drafts, strict=True):
                u, r, item, ev = job
                findings = self.check(draft, item, ev)
                if findings:
                    rejected.setdefault((u, r), []).append(findings)
                    still.append(job)
                    for kind in {finding_kind(f) for f in findings}:
                        self.stats[f"rejected_{kind}"] += 1
                        if attempt == 0:
                            self.stats[f"first_draft_{kind}"] += 1
                else:
                    source = "llm" if attempt == 0 else "llm-retry"
                    done[(u, r)] = Explanation(draft, ev, source, rejected.get((u, r), []))
            self.stats["drafts"] += len(pending)
            self.stats["drafts_rejected"] += len(still)
            if attempt == 0:
                self.stats["first_drafts_rejected"] += len(still)
            if attempt < self.cfg.retries:
                self.stats["regenerated"] += len(still)
            pending = still
        for u, r, item, ev in jobs:
            if (u, r) not in done:
                reason = self.template_reason(item, ev)
                done[(u, r)] = Explanation(reason, ev, "template", rejected.get((u, r), []))
                why = "no_evidence" if not ev else "after_guard" if use_llm else "by_config"
                self.stats["template"] += 1
                self.stats[f"template_{why}"] += 1
        self.stats["explanations"] += len(jobs)
        self.stats["llm_explanations"] += sum(1 for e in done.values() if e.source != "template")
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
                    {"item": v.item, "title": v.title, "relation": v.relation} for v in e.evidence
                ]
        return recommendations
