"""SASRec-CE shortlists, the LLM scores: the hybrid that LlamaRec-style rerankers ship, made a
property of the run rather than a script.

For each history SASRec-CE (trained on the run's own split, `baselines.sasrec` settings) proposes
its `generate.shortlist` best items; the LLM scores every one of them exactly (a forward pass over
the catalogue for atomic ids, a beam as wide as the shortlist otherwise); the final score is

    log p_sasrec(item) + w * log p_llm(item)

with w picked on the validation split from a fixed grid (w = 0 is SASRec alone, w = inf the LLM
alone on the shortlist, so validation can only choose a mix that helped there), unless
`generate.mix_weight` fixes it. Everything lives in RUN_DIR/mix/: sasrec.pt (weights),
hybrid.json (shortlist, weight, the validation sweep, SASRec's training summary).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from llmrec.baselines.sasrec import SasrecRecommender
from llmrec.config import mix_name
from llmrec.errors import InputError
from llmrec.evaluate import ranking_metrics
from llmrec.generate import Recommendation, Recommender
from llmrec.generate.recommender import Domains, check_shape
from llmrec.io import read_json, write_json
from llmrec.mix.content import (
    SASREC_FILE,
    ContentMixRecommender,
    fit_content_mix,
    has_text,
    run_sasrec,
)
from llmrec.mix.surface import MixedRecommender
from llmrec.run_dir import RunDir

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, math.inf)
Scored = tuple[str, float, float]  # item, SASRec log-prob, LLM log-prob


def mixed_scores(rows: list[list[Scored]], weight: float, k: int) -> list[list[tuple[str, float]]]:
    """Each user's top-k (item, score) under sasrec + weight * llm; weight inf ranks by the LLM
    (SASRec breaks ties), 0 by SASRec (the LLM breaks ties)."""
    out = []
    for shortlist in rows:
        # (item, score, tie-break): the score is computed once and is what the caller gets
        scored = [
            (item, llm, sasrec) if weight == math.inf else (item, sasrec + weight * llm, llm)
            for item, sasrec, llm in shortlist
        ]
        scored.sort(key=lambda row: (row[1], row[2]), reverse=True)
        out.append([(item, score) for item, score, _ in scored[:k]])
    return out


class HybridRecommender(MixedRecommender):
    """The `Recommender` surface (recommend, check_history, model, tokenizer, item_ids, backend)
    over SASRec-CE's shortlist and the LLM's scores."""

    def __init__(self, llm: Recommender, sasrec: SasrecRecommender, shortlist: int, weight: float) -> None:
        super().__init__(llm, "sasrec")
        self.sasrec, self.shortlist, self.weight = sasrec, shortlist, weight

    @classmethod
    def from_run(cls, run_dir: str | Path, backend: str | None = None, llm: Recommender | None = None):
        run = RunDir(run_dir)
        settings = read_json(run.mix_dir / "hybrid.json")
        cfg = run.load_config()
        sasrec = run_sasrec(run, settings.get("catalogue_items"))
        weight = cfg.generate.mix_weight if cfg.generate.mix_weight is not None else settings["weight"]
        llm = llm or Recommender.from_run(run.path, backend=backend)
        return cls(llm, sasrec, settings["shortlist"], float(weight))

    def score_shortlists(
        self,
        histories: list[list[str]],
        n: int,
        exclude_history: bool,
        progress: bool = False,
        times: list[list[float] | None] | None = None,
        now: list[float | None] | None = None,
        domains: Domains = None,
    ) -> list[list[Scored]]:
        """SASRec's top-n per history, each with its SASRec and LLM log-probabilities (the LLM sees
        the histories' `times` and `now`, as `Recommender.recommend`; SASRec orders only). With
        several domains, SASRec's shortlist holds the request's domain's items only."""
        known = [[i for i in h if i in self.sasrec.index] for h in histories]  # added items: unknown to it
        logits = self.sasrec.logits(known, exclude_history).float()
        gone = [self.sasrec.index[i] - 1 for i in self.llm.unavailable if i in self.sasrec.index]
        logits[:, gone] = float("-inf")
        if self.llm.domains is not None:
            for row, domain in enumerate(self.llm.domains.check(domains, len(histories))):
                outside = [self.sasrec.index[i] - 1 for i in self.llm.domains.outside[domain]
                           if i in self.sasrec.index]  # fmt: skip
                logits[row, outside] = float("-inf")
        logp = torch.log_softmax(logits, dim=-1)
        top = torch.topk(logp, min(n, logp.shape[1]), dim=-1)
        candidates, sasrec_scores = [], []
        for row_i, row_s in zip(top.indices.tolist(), top.values.tolist(), strict=True):
            kept = [(self.sasrec.items[i], s) for i, s in zip(row_i, row_s, strict=True) if s > -math.inf]
            candidates.append([i for i, _ in kept])
            sasrec_scores.append([s for _, s in kept])
        scored = self.llm.recommend(histories, k=n, exclude_history=exclude_history, candidates=candidates,
                                    progress=progress, times=times, now=now, domains=domains)  # fmt: skip
        rows = []
        for cands, s_scores, recs in zip(candidates, sasrec_scores, scored, strict=True):
            llm = {r.item: r.score for r in recs}
            # every candidate is scored (the LLM ranks exactly its shortlist); guard anyway
            floor = min(llm.values(), default=0.0) - 10.0
            rows.append([(c, s, llm.get(c, floor)) for c, s in zip(cands, s_scores, strict=True)])
        return rows

    def recommend(
        self,
        histories: list[list[str]],
        k: int | None = None,
        exclude_history: bool | None = None,
        progress: bool = False,
        times: list[list[float] | None] | None = None,
        now: list[float | None] | None = None,
        domains: Domains = None,
    ) -> list[list[Recommendation]]:
        """As `Recommender.recommend`: top-`k` per history, from SASRec-CE's shortlist mixed with
        the LLM's scores."""
        k = self.cfg.top_k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a whole number >= 1 (got {k!r})", field="k")
        check_shape(histories, "histories")
        exclude = self.cfg.exclude_history if exclude_history is None else exclude_history
        for n, history in enumerate(histories):
            self.check_history(history, where=f"history {n + 1}")
        n = max(self.shortlist, k)
        rows = self.score_shortlists(histories, n, exclude, progress, times, now, domains)
        return [
            [
                Recommendation(item, self.titles.get(item, ""), score, r + 1)
                for r, (item, score) in enumerate(top)
            ]
            for top in mixed_scores(rows, self.weight, k)
        ]


def fit_hybrid(
    run_dir: str | Path,
    llm: Recommender | None = None,
    log: Callable[[str], None] = print,
    *,
    shortlist: int | None = None,
    sasrec_weights: str | Path | None = None,
    users: pd.DataFrame | None = None,
) -> dict:
    """Train SASRec-CE on the run's split (or load `sasrec_weights`, default the run's
    generate.sasrec_weights), pick the mixing weight on validation (every validation user, or
    `users`) for `shortlist` (default generate.shortlist), and save both in RUN_DIR/mix/.
    Returns hybrid.json."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    split = run.load_split()
    shortlist = shortlist or cfg.generate.shortlist
    sasrec_weights = sasrec_weights or cfg.generate.sasrec_weights
    t0 = time.time()
    sasrec = SasrecRecommender(split, cfg.baselines.sasrec)
    if sasrec_weights is not None:
        log(f"mix: SASRec-CE weights from {sasrec_weights}")
        sasrec.load_checked(Path(sasrec_weights))
        summary = {"weights": str(sasrec_weights)}
    else:
        log("mix: training SASRec-CE on the run's split (baselines.sasrec settings)")
        summary = sasrec.fit(split, cfg.generate.exclude_history, log=log)
    folder = run.mix_dir
    folder.mkdir(exist_ok=True)
    sasrec.save(folder / SASREC_FILE)
    hybrid = HybridRecommender(llm or Recommender.from_run(run.path), sasrec, shortlist, 0.0)
    users = split.eval_users("valid") if users is None else users
    log(f"mix: the LLM scores SASRec's top-{shortlist} for {len(users)} validation users")
    rows = hybrid.score_shortlists(split.histories(users, "valid"), shortlist, cfg.generate.exclude_history,
                                   progress=True, times=split.times(users, "valid"),
                                   domains=split.user_domains(users))  # fmt: skip
    targets, catalogue = users["valid"].tolist(), set(split.items["item"])
    sweep = {
        str(w): ranking_metrics(targets, [[i for i, _ in t] for t in mixed_scores(rows, w, 10)], catalogue)[
            "ndcg@10"
        ]
        for w in WEIGHTS
    }
    weight = max(WEIGHTS, key=lambda w: (sweep[str(w)], -w))  # ties: the smaller weight
    recall = sum(t in {c for c, _, _ in r} for t, r in zip(targets, rows, strict=True)) / max(len(targets), 1)
    settings = {
        "mix": "hybrid",
        "shortlist": shortlist,
        "weight": weight,
        "valid_ndcg@10_by_weight": sweep,
        "valid_shortlist_recall": round(recall, 4),
        "valid_users": len(targets),
        "catalogue_items": len(sasrec.items),
        "sasrec": {k: v for k, v in summary.items() if k != "log"},
        "wall_s": round(time.time() - t0, 1),
    }
    write_json(folder / "hybrid.json", settings | {"weight": str(weight)})  # "inf": JSON has no infinity
    log(
        f"mix: weight {weight} (valid NDCG@10 {sweep[str(weight)]:.4f}; SASRec alone "
        f"{sweep['0.0']:.4f}, LLM alone on the shortlist {sweep['inf']:.4f})"
    )
    return settings


def available_sasrec(run_dir: str | Path) -> Path | None:
    """SASRec-CE weights the run can use without training one: generate.sasrec_weights, or those
    `llmrec baseline CONFIG --model sasrec` left in baselines_dir."""
    cfg = RunDir(run_dir).load_config()
    if cfg.generate.sasrec_weights is not None:
        return Path(cfg.generate.sasrec_weights)
    saved = Path(cfg.baselines_dir) / "sasrec" / "model.pt"
    return saved if saved.is_file() else None


def choose_mix(
    run_dir: str | Path,
    log: Callable[[str], None] = print,
    llm_ndcg: float | None = None,
    record: dict | None = None,
) -> dict:
    """`generate.mix: auto` after training: the LLM alone, the hybrid (with a SASRec-CE
    available) and the content mix (atomic ids on a catalogue with text) are ranked on the same
    validation users (training's sample, `SplitData.eval_sample`) and the best becomes the run's
    default (RUN_DIR/mix/choice.json, read by `load_recommender`); with neither available, the
    LLM alone, said so. `llm_ndcg`: the LLM's NDCG@10 on those users when the caller has it
    (training's best validation), else it is computed. Each mix's weight is picked on those users
    too, so its number is the better of a dozen mixes: a slight edge the choice gives it. `record`:
    more to keep in choice.json (what `train` did to have a SASRec-CE)."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    folder = run.mix_dir
    weights = available_sasrec(run.path)
    split = run.load_split()
    mixable = cfg.ids.scheme == "atomic" and has_text(split)
    if weights is None and not mixable:
        log("mix: none available (no SASRec-CE: generate.sasrec_weights, `llmrec baseline CONFIG "
            "--model sasrec`, or generate.sasrec_time_share above 0; a content mix needs atomic ids and "
            "item text): the LLM alone ranks the catalogue")  # fmt: skip
        choice = {"chosen": "llm", "reason": "no SASRec-CE mix available and no item text to mix"}
    else:
        users = split.eval_sample("valid", cfg.train.eval_users, cfg.train.seed)
        llm = Recommender.from_run(run.path)
        alone = llm_ndcg
        if alone is None:
            histories, times = split.histories(users, "valid"), split.times(users, "valid")
            domains = split.user_domains(users)
            lists = llm.recommend(histories, k=10, progress=True, times=times, domains=domains)
            targets, catalogue = users["valid"].tolist(), set(split.items["item"])
            alone = ranking_metrics(targets, [[r.item for r in row] for row in lists], catalogue)["ndcg@10"]
        ndcg = {"llm": alone}
        choice = {"valid_users": len(users)}
        if weights is not None:
            hybrid = fit_hybrid(run.path, llm, log, sasrec_weights=weights, users=users)
            ndcg["hybrid"] = hybrid["valid_ndcg@10_by_weight"][str(hybrid["weight"])]
            choice["sasrec_weights"] = str(weights)
        else:
            log("mix: no SASRec-CE available (generate.sasrec_weights, `llmrec baseline CONFIG "
                "--model sasrec`, or generate.sasrec_time_share above 0): no hybrid to compare")  # fmt: skip
        if mixable:
            content = fit_content_mix(run.path, llm, log, users=users, sasrec_weights=weights)
            ndcg["content"] = content["valid_ndcg@10"]
        chosen = max(ndcg, key=lambda name: (ndcg[name], name == "llm"))  # ties: the LLM alone
        choice = {"chosen": chosen, **choice, "valid_ndcg@10": ndcg}
        names = {"llm": "the LLM alone", "hybrid": "SASRec-CE shortlist + LLM", "content": "the content mix"}
        log("mix: validation NDCG@10 " + ", ".join(f"{names[n]} {v:.4f}" for n, v in ndcg.items())
            + f": the run's default is {names[chosen]}")  # fmt: skip
    choice |= record or {}
    folder.mkdir(exist_ok=True)
    write_json(folder / "choice.json", choice)
    return choice


MIX_BY_CHOICE = {"llm": "none", "hybrid": "hybrid", "content": "content"}


def fitted_sasrec(run_dir: str | Path) -> SasrecRecommender | None:
    """The SASRec-CE the run's mixes were fitted with (RUN_DIR/mix/sasrec.pt), over the
    catalogue it was trained on; None when the run has none."""
    run = RunDir(run_dir)
    if not (run.mix_dir / SASREC_FILE).exists():
        return None
    for name, key in (("hybrid.json", "catalogue_items"), ("content_mix.json", "sasrec_catalogue_items")):
        if (path := run.mix_dir / name).exists() and key in (fit := read_json(path)):
            return run_sasrec(run, fit[key])
    return run_sasrec(run, None)


def run_mix(run_dir: str | Path) -> str:
    """The mix a run uses when none is asked for: its generate.mix, with auto resolved
    by what `choose_mix` stored (none before it ran)."""
    run = RunDir(run_dir)
    configured = run.load_config().generate.mix
    if configured != "auto":
        return configured
    choice = run.mix_dir / "choice.json"
    return MIX_BY_CHOICE[read_json(choice)["chosen"]] if choice.exists() else "none"


def placed_by_chance(
    run: RunDir, llm: Recommender, log: Callable[[str], None] = print
) -> Recommender | ContentMixRecommender:
    """The LLM alone; when items were added after training (`llmrec items add`) and
    `generate.new_item_placement` is calibrated, on atomic ids and a catalogue with text, with
    those items placed by the content mix fit's chance tables (its `llm_alone` table: the mix's
    weight is not used), fitted now if the run has none. On ML-100K this kept warm NDCG@10 that the
    slots gave away (benchmarks/results/cold_start/newest-items.json). A fit from before the table: slots."""
    if not (
        llm.new_items.any() and llm.cfg.new_item_placement == "calibrated" and llm.item_tokens is not None
    ):
        return llm
    if not (has_content_mix(run) or has_text(run.load_split())):
        return llm
    fit_content_mix_once(run, llm, log, "placing added items needs the content mix fit's chance tables")
    alone = ContentMixRecommender.from_run(run.path, llm=llm, alone=True)
    return alone if alone.chance is not None else llm


def has_content_mix(run: RunDir) -> bool:
    return (run.mix_dir / "content_mix.json").exists()


def fit_content_mix_once(run: RunDir, llm: Recommender, log: Callable[[str], None], why: str) -> None:
    """Fit the content mix on the run's validation users unless the run has one (said, with `why`)."""
    if not has_content_mix(run):
        log(f"{run.path}: {why}; fitting it now (saved in {run.mix_dir})")
        fit_content_mix(run.path, llm, log, sasrec_weights=available_sasrec(run.path))


def load_recommender(
    run_dir: str | Path,
    backend: str | None = None,
    mix: str | None = None,
    log: Callable[[str], None] = print,
) -> Recommender | HybridRecommender | ContentMixRecommender:
    """The run's recommender: the LLM alone ('none'), or with `mix` (default: the run's
    `generate.mix`, auto as chosen on validation) 'hybrid' or 'content'; a run without a fitted
    mix gets one now (once)."""
    run = RunDir(run_dir)
    mix = mix_name(mix) or run_mix(run.path)
    if mix not in MIX_BY_CHOICE.values():
        raise InputError(f"unknown mix {mix!r}: use none, hybrid or content", field="mix")
    llm = Recommender.from_run(run.path, backend=backend)
    if mix == "none":
        return placed_by_chance(run, llm, log)
    if mix == "content":
        fit_content_mix_once(run, llm, log, "no content mix fitted yet")
        return ContentMixRecommender.from_run(run.path, llm=llm)
    if not (run.mix_dir / "hybrid.json").exists():
        log(f"{run.path}: no hybrid fitted yet; fitting it now (saved in {run.mix_dir})")
        fit_hybrid(run.path, llm, log)
    return HybridRecommender.from_run(run.path, llm=llm)
