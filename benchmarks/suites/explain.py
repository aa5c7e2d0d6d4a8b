"""Benchmark: explanations for 100 test users x top-5 per data set, each generator setting side by
side on the same recommendations, audited by code that shares nothing with the check but the items'
attributes.

Per data set and generator setting (`statement`: the plain statement of the chosen facts, the
model's own leave-one-out attribution among them; `statement-data-only`: the same without the
attribution, facts from the data alone; `llm`: the run's base model says the facts in a sentence,
checked, with the statement as fallback):
- false-claim rate: explanations with any false claim, audited on both sides: an attribute stated
  (outside the titles) that the recommended item or any history item the text names lacks; "people
  who ... also" with no named history item chosen together with it; a number no fact gives; a
  catalogue title (multi-word, verbatim) other than the item's and the user's history's;
- specific: states an attribute true of the item and of a history item (named, or among the last
  10), or names a history item with "people who" and they were chosen together;
- vacuous: no attribute, no history item, no link: nothing a reader could check;
- USR (unique explanations / all), DIV (PETER: mean attributes shared by two explanations, lower is
  more varied), feature coverage (attributes mentioned / the catalogue's), fallbacks (statements
  where the model's drafts failed), latency per explanation and per user's top-5.
Writes results/explain/DATASET.json and docs/explanations-examples.md (20 examples per data set).

    python -m benchmarks explain --runs ml100k=RUN_DIR industrial=RUN_DIR
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path

from benchmarks import data
from benchmarks.common import record
from llmrec.explain import Explainer, Explanation, display_title
from llmrec.explain.guard import short_title
from llmrec.generate import Recommendation, Recommender
from llmrec.io import atomic_path
from llmrec.recipes import explainer as run_explainer
from llmrec.recipes import sample_users
from llmrec.run_dir import RunDir

NOUNS = {"ml100k": "movie", "industrial": "product"}
# label -> explain settings: the plain statement with and without the model's own attribution, and
# the base model's sentence (checked, the statement as fallback)
GENERATORS = {
    "statement": {"generator": "statement"},
    "statement-data-only": {"generator": "statement", "attribution": False},
    "llm": {"generator": "llm"},
}
OTHERS = re.compile(
    r"\b(people|person|others|fans|viewers|customers|buyers|players|users|those)\s+who\b|\bfans\s+of\b"
)
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def audit(explainer: Explainer, history: list[str], rec: Recommendation, e: Explanation) -> dict:
    """One explanation's claims, found by verbatim title search (not the guard's matching). A claim
    belongs to the items its sentence names (all named items when it names none); a name that
    several history listings share ("HATCHBOX PLA 3D Printer Filament" in four colours) stands for
    any of them."""
    reason = e.reason.replace("″", '"')  # a title's inch mark, written ″ inside quotes
    low = reason.lower()
    titles = explainer.titles

    def names_of(i: str) -> set[str]:
        return {n.lower() for n in (display_title(titles.get(i, "")), short_title(titles.get(i, ""))) if n}

    listings: dict[str, set[str]] = {}  # a name -> the items (history and recommended) it may mean
    for i in (*history, rec.item):
        for n in names_of(i):
            listings.setdefault(n, set()).add(i)
    said = sorted((n for n in listings if _said(n, low)), key=len, reverse=True)
    own = names_of(rec.item)
    named = sorted({i for n in said if n not in own for i in listings[n]} - {rec.item})
    text, groups = low, []
    for n in said:  # each name becomes a mark (a private-use character): no claim, no sentence end
        if n in text:
            text = text.replace(n, f" {chr(0xE000 + len(groups))} ")
            groups.append({rec.item} if n in own else listings[n])
    attrs = explainer.attributes
    stated, false = set(), []
    for sentence in re.split(r"(?<=[.!?;])\s+", text):
        about = [g for m, g in enumerate(groups) if chr(0xE000 + m) in sentence] or groups or [{rec.item}]
        for a in attrs.mentioned(sentence):
            stated.add(a)
            if any(not any(a in attrs[i] for i in g) for g in about):
                false.append(a)
    together = {i: explainer.selector.evidence.together(rec.item, i) for i in named}
    links = OTHERS.search(text) is not None
    if links and not any(together.values()):
        false.append("people who ... also: chosen together by nobody")
    recent = [i for i in history[-10:] if i != rec.item]
    counts = {str(v) for v in together.values()} | {str(len(recent))}
    counts |= {str(sum(a in attrs[i] for i in recent)) for a in stated}  # "4 of your last 10 are ..."
    moves = {v.item: v.moves for v in e.evidence if v.moves}  # the model's ranks, measured at explain time
    counts |= {str(n) for i in named if i in moves for n in (*moves[i], moves[i][1] - moves[i][0])}
    false += [n for n in NUMBER.findall(text) if n not in counts]
    allowed = set(listings)
    others = [t for t in explainer.multiword if t in reason and not any(t.lower() in a for a in allowed)]
    false += others
    near = set().union(*(attrs[i] for i in (*recent, *named)))
    specific = bool(stated & set(attrs[rec.item]) & near)
    specific = specific or (links and any(together.values()))
    specific = specific or any(i in moves and f"{moves[i][1] - moves[i][0]} places" in text for i in named)
    return {"false": false, "specific": specific, "vacuous": not (stated or named or links), "stated": stated}


def _said(name: str, text: str) -> bool:
    """A title in a text: as whole words, and one-word titles only in quotes ("Heat", not heat)."""
    if " " not in name:
        return f'"{name}"' in text
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


def measure(explainer: Explainer, histories, recs, out, seconds: float) -> dict:
    rows = [
        (h, r, e) for h, rs, es in zip(histories, recs, out, strict=True) for r, e in zip(rs, es, strict=True)
    ]
    audits = [audit(explainer, h, r, e) for h, r, e in rows]
    n = len(rows)
    mentions = Counter(a for x in audits for a in x["stated"])
    pairs = n * (n - 1) / 2
    return {
        "explanations": n,
        "false_claim_rate": round(sum(bool(x["false"]) for x in audits) / n, 4),
        "specific": round(sum(x["specific"] for x in audits) / n, 4),
        "vacuous": round(sum(x["vacuous"] for x in audits) / n, 4),
        "usr": round(len({e.reason for _, _, e in rows}) / n, 4),
        "div": round(sum(c * (c - 1) / 2 for c in mentions.values()) / pairs, 4) if pairs else 0.0,
        "feature_coverage": round(len(mentions) / max(1, len(explainer.attributes.vocabulary)), 4),
        "facts_specific": round(sum(bool(e.facts and e.facts.specific) for _, _, e in rows) / n, 4),
        "model_written": round(sum(e.source != "statement" for _, _, e in rows) / n, 4),
        "fallbacks": round(explainer.stats["statement_after_check"] / n, 4),
        "latency_s": round(seconds / n, 4),
        "latency_top5_s": round(seconds / len(histories), 3),
        "counts": {k: round(v, 2) for k, v in explainer.stats.items()},
        "false_claims": [
            {"reason": e.reason, "audit": x["false"]}
            for (_, _, e), x in zip(rows, audits, strict=True)
            if x["false"]
        ][:20],
    }


def examples(
    name: str, split, users, histories, recs, outputs: dict[str, list], shown: int = 20
) -> list[str]:
    titles = split.titles()
    lines = [f"## {name}", ""]
    count = 0
    for user, history, rs, n in zip(users, histories, recs, range(len(users)), strict=True):
        for r_index, rec in enumerate(rs[:2]):  # two items a user: more users, same count
            if count == shown:
                return lines
            recent = "; ".join(short_title(titles[i]) for i in history[-5:])
            lines += [f"**user {user}, #{r_index + 1}: {short_title(rec.title)}** (recent: {recent})", ""]
            for generator, out in outputs.items():
                e = out[n][r_index]
                lines.append(f"- {generator} ({e.source}): {e.reason}")
            lines.append("")
            count += 1
    return lines


def run_dataset(name: str, run_dir: str, users_n: int, k: int) -> list[str]:
    run = RunDir(run_dir)
    cfg = run.load_config()
    split = run.load_split()
    users = sample_users(split, users_n, seed=0)
    rows = split.eval_users("test").set_index("user")
    histories = [split.history(rows.loc[u], "test") for u in users]
    rec = Recommender.from_run(run.path, backend="hf")
    t0 = time.perf_counter()
    recs = rec.recommend(histories, k=k, progress=True)
    recommend_s = time.perf_counter() - t0
    metrics, outputs = {}, {}
    for generator, settings in GENERATORS.items():
        settings = settings | {"item_noun": NOUNS.get(name, "item")}
        # the writer for `llm` is the whole base model where the run's body is cut
        explainer = run_explainer(run, rec, split, settings)
        explainer.multiword = [display_title(t) for t in explainer.titles.values() if " " in display_title(t)]
        t = time.perf_counter()
        out = explainer.explain(histories, recs)
        seconds = time.perf_counter() - t
        outputs[generator] = out
        metrics[generator] = measure(explainer, histories, recs, out, seconds)
        print(
            name, generator, {k: v for k, v in metrics[generator].items() if not isinstance(v, dict | list)}
        )
    summary = {
        f"{g} {m}": metrics[g][m]
        for g in GENERATORS
        for m in ("false_claim_rate", "specific", "vacuous", "usr", "fallbacks", "latency_s")
    }
    record(
        "explain",
        name,
        {"run": str(run.path), "users": len(users), "k": k, "generators": metrics},
        summary,
        dataset=name,
        variant="generators",
        config={"explain": cfg.explain.model_dump(), "users": users_n, "k": k},
        timings={"recommend_s": round(recommend_s, 1)},
        data=data.provenance(name),
    )
    return examples(name, split, users, histories, recs, outputs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks explain", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="DATASET=RUN_DIR (a trained run)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--examples", default="docs/explanations-examples.md")
    args = parser.parse_args(argv)
    page = [
        "# Example explanations",
        "",
        "Written by `python -m benchmarks explain` (results in benchmarks/results/explain/); test users'",
        "top-5, two items each, every generator setting on the same item. `statement`: the plain",
        "statement of the chosen facts (the model's own attribution among them); `statement-data-only`:",
        "the same from the data alone; `llm`: the base model says the facts in a sentence, every claim",
        "checked on both sides, the statement as fallback. Source in brackets: llm, llm-retry (a redraft",
        "passed), statement.",
        "",
    ]
    for pair in args.runs:
        name, _, run_dir = pair.partition("=")
        page += run_dataset(name, run_dir, args.users, args.k)
    with atomic_path(Path(args.examples)) as tmp:
        tmp.write_text("\n".join(page) + "\n")
    print(f"wrote {args.examples}")


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
