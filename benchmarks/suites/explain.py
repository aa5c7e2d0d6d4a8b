"""Benchmark: explanations for 100 ML-100K test users x top-5, with the base model (adapter
disabled) and with the run's adapter on, side by side on the same recommendations.

Per variant: evidence coverage (reasons naming at least one evidence item; also counted on the
model-written part alone, without the template's answer lead), how often the reason names the
recommended item, the invented-title rate of first drafts and of final reasons (by the guard, and
by an independent audit: plain case-insensitive substring search for every multi-word catalogue
title), regeneration and template-fallback rates, and mean latency per explanation. A draft is
rejected for naming another catalogue title or a quoted name outside the catalogue ("invented
title"), for claiming a trait (genre) the recommended item lacks, or for not naming the
recommended item. Informative: the reason states one of the item's own traits (genres), beyond
what the template's lead says. Writes results/explain/ml100k.json and 10 example outputs of the
chosen variant to docs/explanations-examples.md.

    python -m benchmarks explain --run RUN_DIR      # a trained ML-100K run
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import record
from llmrec.data import SplitData
from llmrec.explain import Explainer, Explanation, display_title
from llmrec.explain.explainer import traits
from llmrec.generate import Recommendation, Recommender
from llmrec.io import atomic_path
from llmrec.recipes import sample_users
from llmrec.run_dir import RunDir


def substring_audit(titles: dict[str, str]) -> Callable[[str, list[str]], list[str]]:
    """A check that shares no code with the guard: which multi-word catalogue titles (as people
    write them) occur verbatim in the text, other than the allowed items' or parts of them."""
    names = {item: display_title(t).lower() for item, t in titles.items() if t}
    multiword = {item: n for item, n in names.items() if " " in n}

    def audit(text: str, allowed: list[str]) -> list[str]:
        low = text.lower()
        ok = [names.get(i, "") for i in allowed]
        return sorted({n for i, n in multiword.items() if n in low and not any(n in a for a in ok if a)})

    return audit


def measure(
    explainer: Explainer,
    audit: Callable[[str, list[str]], list[str]],
    recs: list[list[Recommendation]],
    out: list[list[Explanation]],
) -> dict:
    pairs = [(r, e) for rs, es in zip(recs, out, strict=True) for r, e in zip(rs, es, strict=True)]
    n = len(pairs)
    guard = explainer.guard
    cites, cites_model_text, names_item, invented, invented_audit, informative = 0, 0, 0, 0, 0, 0
    audit_findings = []
    for rec, e in pairs:
        evidence = [v.item for v in e.evidence]
        allowed = [rec.item, *evidence]
        cites += bool(evidence and guard.cited(e.reason, evidence))
        written = e.reason  # what the model wrote itself: the reason without the template's lead
        if e.source != "template" and evidence:
            written = e.reason.removeprefix(explainer.prompt(rec.item, e.evidence)[1])
            cites_model_text += bool(guard.cited(written, evidence))
        # informative: says something true about the item, one of its own traits ("a horror film");
        # "both are the same" passes the guard but tells the user nothing
        own = traits(explainer.details.get(rec.item, ""))
        informative += any(explainer.trait_patterns[t].search(written.lower()) for t in own)
        names_item += bool(guard.cited(e.reason, [rec.item]))
        invented += bool(guard.violations(e.reason, allowed))
        if found := audit(e.reason, allowed):
            invented_audit += 1
            audit_findings.append({"item": rec.title, "reason": e.reason, "audit": found})
    stats = explainer.stats
    first_drafts = max(1, stats["drafts"] - stats["regenerated"])
    llm_reasons = sum(1 for _, e in pairs if e.source != "template")
    return {
        "explanations": n,
        "evidence_coverage": round(cites / n, 4),
        "evidence_coverage_model_text": round(cites_model_text / max(1, llm_reasons), 4),
        "names_recommended_item": round(names_item / n, 4),
        "states_a_true_trait_of_the_item": round(informative / n, 4),
        "first_draft_invented_title_rate": round(stats["first_draft_invented_title"] / first_drafts, 4),
        "first_draft_unsupported_trait_rate": round(stats["first_draft_unsupported_trait"] / first_drafts, 4),
        "first_draft_misses_item_rate": round(stats["first_draft_misses_item"] / first_drafts, 4),
        "invented_rate_after_guard": round(invented / n, 4),
        "invented_rate_after_guard_audit": round(invented_audit / n, 4),
        "regeneration_rate": round(stats["regenerated"] / first_drafts, 4),
        "template_rate": round(stats["template"] / n, 4),
        "template_no_evidence_rate": round(stats["template_no_evidence"] / n, 4),
        "llm_reason_rate": round(llm_reasons / n, 4),
        "mean_latency_s": round(stats["seconds"] / n, 4),
        "counts": dict(stats),
        "audit_findings": audit_findings[:20],
    }


def examples_markdown(
    split: SplitData, users: list[str], histories: list[list[str]], recs: list, out: list, variant: str
) -> str:
    titles = split.titles()
    lines = [
        "# Example explanations",
        "",
        f"Written by `python scripts/bench_explain.py` (variant: adapter {variant}); the first 10 of the",
        "benchmark's 100 ML-100K test users x top-5. Evidence: history items that co-occur with the",
        "recommended item in the training data (cosine of co-occurrence counts). Source: `llm` (first",
        "draft passed the guard), `llm-retry` (a regenerated draft passed), `template` (fixed wording).",
        "",
    ]
    shown = 0
    for user, history, rs, es in zip(users, histories, recs, out, strict=True):
        recent = ", ".join(display_title(titles[i]) for i in history[-5:])
        for r, e in zip(rs, es, strict=True):
            if shown == 10:
                return "\n".join(lines) + "\n"
            evidence = "; ".join(f"{display_title(v.title)} ({v.relation:.2f})" for v in e.evidence) or "none"
            lines += [
                f"## user {user}: {r.title}",
                f"- last watched: {recent}",
                f"- reason ({e.source}): {e.reason}",
                f"- evidence: {evidence}",
                "",
            ]
            shown += 1
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/ml100k/run")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--noun", default="movie")
    parser.add_argument("--examples", default="docs/explanations-examples.md")
    args = parser.parse_args(argv)

    run = RunDir(args.run)
    cfg = run.load_config()
    split = run.load_split()
    users = sample_users(split, args.users, seed=0)
    rows = split.eval_users("test").set_index("user")
    histories = [split.history(rows.loc[u], "test") for u in users]
    rec = Recommender.from_run(run.path, backend="hf")
    t0 = time.perf_counter()
    recs = rec.recommend(histories, k=args.k, progress=True)
    recommend_s = time.perf_counter() - t0
    audit = substring_audit(split.titles())

    report: dict = {
        "run": str(run.path),
        "users": len(users),
        "k": args.k,
        "evidence": "co-occurrence cosine over users' training sequences (llmrec/explain/evidence.py)",
        "variants": {},
    }
    outputs = {}
    for variant in ("disabled", "enabled"):
        explain_cfg = cfg.explain.model_copy(update={"adapter": variant, "item_noun": args.noun})
        explainer = Explainer.for_split(rec.model, rec.tokenizer, split, explain_cfg)
        out = explainer.explain(histories, recs)
        outputs[variant] = out
        report["variants"][f"adapter_{variant}"] = measure(explainer, audit, recs, out)
        print(variant, json.dumps(report["variants"][f"adapter_{variant}"]), flush=True)
    # the variant whose final reasons more often say something true about the item, then the one
    # that falls back to the template less; ties go to the base model, which needs no adapter
    scores = {
        v: (m["states_a_true_trait_of_the_item"], m["llm_reason_rate"])
        for v, m in ((v, report["variants"][f"adapter_{v}"]) for v in ("disabled", "enabled"))
    }
    chosen = "enabled" if scores["enabled"] > scores["disabled"] else "disabled"
    report["chosen"] = f"adapter_{chosen}"
    chosen_row = report["variants"][report["chosen"]]
    summary = {"chosen": report["chosen"]} | {
        k: v for k, v in chosen_row.items() if isinstance(v, float | int)
    }
    record(
        "explain",
        "ml100k",
        report,
        summary,
        dataset="ml100k",
        variant="adapter",
        timings={"recommend_s": round(recommend_s, 1)},
    )
    with atomic_path(Path(args.examples)) as tmp:
        tmp.write_text(examples_markdown(split, users, histories, recs, outputs[chosen], chosen))
    print(f"wrote {args.examples}; chosen: adapter {chosen}")


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
