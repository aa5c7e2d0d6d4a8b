"""The LLM plus the item text's similarity to the user's recent history, and SASRec-CE's log-prob
where the run has one: the content mix (`generate.mix: content`).

On a text-rich catalogue the text of consecutive items is the strongest single signal, and the
LLM, even with anchored rows, uses only part of it (Industrial warm NDCG@10: content baseline 0.0668,
anchored LLM 0.0597, the two mixed 0.0717; benchmarks/results/cold_start/newest-items.json).
For atomic ids every
item already has an exact log-probability, so the mix is a sum over the whole catalogue, new items
included:

    score(item) = log p_llm(item) + w * cos(profile of the last L history items, item)
                                  + v * log p_sasrec(item)

with the content baseline's vectors and profile (`llmrec.baselines.content`). SASRec-CE's term is
there when a SASRec-CE trained on the run's split is available (`generate.sasrec_weights`, or the
one `llmrec baseline` left in baselines_dir: what the hybrid uses): collaborative and text signals
are complementary, and on Industrial the three together lifted warm NDCG@10 by 10% over the LLM and
text alone (benchmarks/results/cold_start/newest-items.json). L, w and v are picked on validation
users from fixed
grids (w = v = 0 is the LLM alone), and a mix is kept only when it beats the LLM alone there by more
than one standard error (the best of 78 mixes on the same users also wins by luck); SASRec-CE's term
likewise only when it beats the best mix without it by more than one standard error. An item
SASRec-CE was not trained on (added later) gets the uniform log-prob: it knows nothing of it. Items
added after training (`llmrec items add`) get their cosine from their text at once, and
are placed by calibrated chance (`generate.new_item_placement`, `generate.new_items.top_by_chance`;
`generate.new_item_boost` scales their chance):
the fit also counts, on the same validation users, the share of targets at each rank of the kept
ranking, of the LLM's own ranking (for the LLM alone, `mix: none`, which places added items
the same way: `llm_alone`) and of text similarity to the latest item, and each ranking's share
among the users whose item at that rank is not their nearest by text (`ranked_apart`,
`llm_alone_apart`: the warm chances for a user whose nearest item is an added one). Stored in
RUN_DIR/mix/content_mix.json (profile, weight, the validation sweep, the gain and its error,
the chance tables, SASRec-CE's weight; its weights in RUN_DIR/mix/sasrec.pt).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from llmrec.baselines.content import PROFILES, ContentRecommender
from llmrec.baselines.sasrec import SasrecRecommender
from llmrec.catalogue.change import base_model, catalogue_text_vectors
from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.generate import Recommendation, Recommender
from llmrec.generate.new_items import PROFILE_ITEMS, RankChance, chance_tables, target_ranks
from llmrec.generate.recommender import Domains
from llmrec.io import atomic_path, read_json, write_json
from llmrec.mix.surface import MixedRecommender
from llmrec.run_dir import RunDir

# log-prob units per unit of cosine. The top weights let the text decide all but near-ties (at 320 a
# cosine 0.05 apart outweighs 16 nats of LLM log-prob): on a sparse catalogue (1,000 Beauty users,
# items seen ~2 times in training) validation still rose at 40, the old top, in all six runs.
# TEXT_FIRST ends the grid where the text ranks and the LLM only breaks ties (a cosine 0.001 apart is
# 10 nats), the content baseline's own ranking, as the hybrid's grid ends with SASRec-CE alone: on the
# 1,000-user Toys sample validation still rose at 320 and the chosen mix stayed below the content
# baseline on test (0.064 vs 0.068). Finite: an infinite weight makes 0 x inf and -inf + inf NaNs.
TEXT_FIRST = 1e4
WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 40.0, 80.0, 160.0, 320.0, TEXT_FIRST)
SASREC_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # per nat of SASRec-CE's log-prob
SASREC_FILE = "sasrec.pt"  # in RUN_DIR/mix/, shared with the hybrid (llmrec.mix.hybrid)
CHUNK = 256  # histories per bonus matrix: (chunk, catalogue) floats, whatever the request's size


def profile_name(last: int | None) -> str:
    return str(last or "all")


def run_text_vectors(run: RunDir, items: pd.DataFrame, log: Callable[[str], None] = print) -> np.ndarray:
    """Each catalogue item's (`items`, the run's split) text embedding by the run's base model
    (RUN_DIR/item_text_vectors.npy, the file `llmrec items add` extends), embedded and saved on first use."""
    vectors = run.load_text_vectors(len(items))
    if vectors is None:
        log(f"content mix: embedding {len(items)} item texts with the base model (once per run)")
        vectors = catalogue_text_vectors(*base_model(run.load_config()), items)
        with atomic_path(run.text_vectors) as tmp, open(tmp, "wb") as f:
            np.save(f, vectors)
    return vectors


def has_text(split: SplitData) -> bool:
    return any(text.strip() for text in split.title_or_text().values())


def run_sasrec(run: RunDir, catalogue_items: int | None) -> SasrecRecommender:
    """The SASRec-CE in RUN_DIR/mix/, over the catalogue it was trained on: the run's first
    `catalogue_items` items (`llmrec items add` appends; None: fits from before that count was kept,
    the whole catalogue)."""
    split = run.load_split()
    split.items = split.items.iloc[:catalogue_items]
    sasrec = SasrecRecommender(split, run.load_config().baselines.sasrec)
    sasrec.load(run.mix_dir / SASREC_FILE)
    return sasrec


def sasrec_log_probs(sasrec: SasrecRecommender, histories: list[list[str]], items: list[str]) -> torch.Tensor:
    """(histories, `items`) SASRec-CE's next-item log-probabilities, columns in `items` order. Items it
    was not trained on (added later) are left out of its input and get the uniform log(1/n)."""
    known = [[i for i in h if i in sasrec.index] for h in histories]
    logp = torch.log_softmax(sasrec.logits(known, exclude_history=False).float(), dim=-1)
    out = torch.full((len(histories), len(items)), -float(np.log(len(sasrec.items))))
    columns = [n for n, item in enumerate(items) if item in sasrec.index]
    out[:, columns] = logp[:, [sasrec.index[items[n]] - 1 for n in columns]]
    return out


def target_ndcg(scores: torch.Tensor, columns: list[int], k: int = 10) -> np.ndarray:
    """Per row, NDCG@k of its target column under `scores`; an excluded target (-inf) scores 0."""
    target, rank = target_ranks(scores, columns)  # 0-based: what user_ndcg reads off a top-k list
    gain = 1.0 / torch.log2(rank.double() + 2.0)
    return torch.where((rank < k) & (target > float("-inf")), gain, 0.0).numpy()


class ContentMixRecommender(MixedRecommender):
    """The `Recommender` surface (recommend, check_history, model, tokenizer, item_ids, backend)
    over the LLM's catalogue log-probs plus `weight` times the content cosine."""

    def __init__(
        self,
        llm: Recommender,
        content: ContentRecommender,
        profile: int | None,
        weight: float,
        chance: dict[str, list[float]] | None = None,
        alone: bool = False,
        sasrec: SasrecRecommender | None = None,
        sasrec_weight: float = 0.0,
    ) -> None:
        """`chance`: the fit's tables for placing added items (`generate.new_items.chance_tables`);
        `alone`: the LLM alone (`weight` 0) whose added items are placed by `chance`, `mix: none`;
        `sasrec`, `sasrec_weight`: SASRec-CE's term (none: the LLM and the text only)."""
        if content.items != llm.item_ids.items:
            raise InputError("the content vectors and the run's catalogue list different items",
                             field="item_text_vectors.npy")  # fmt: skip
        super().__init__(llm, "text placement" if alone else "content")
        self.content, self.profile, self.weight = content, profile, weight
        self.chance, self.alone = chance, alone
        self.sasrec, self.sasrec_weight = sasrec, sasrec_weight if sasrec is not None else 0.0

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        backend: str | None = None,
        llm: Recommender | None = None,
        alone: bool = False,
    ) -> ContentMixRecommender:
        """The run's fitted mix; `alone`: the LLM alone with the fit's `llm_alone` chance table."""
        run = RunDir(run_dir)
        settings = read_json(run.mix_dir / "content_mix.json")
        llm = llm or Recommender.from_run(run.path, backend=backend)
        split = run.load_split()
        content = ContentRecommender(split, run_text_vectors(run, split.items))
        profile = None if settings["profile"] == "all" else int(settings["profile"])
        chance = settings.get("rank_chance")  # absent from fits before calibrated placement: slots
        if chance is not None and "llm_alone" not in chance and alone:
            chance = None  # a fit from before the LLM-alone table
        sasrec_weight = 0.0 if alone else float(settings.get("sasrec_weight", 0.0))  # absent from older fits
        sasrec = run_sasrec(run, settings["sasrec_catalogue_items"]) if sasrec_weight else None
        weight = 0.0 if alone else float(settings["weight"])
        return cls(llm, content, profile, weight, chance, alone, sasrec, sasrec_weight)

    def cosines(self, histories: list[list[str]], profile: int | None) -> torch.Tensor:
        """(histories, catalogue) cosine with the profile; 0 for items without text (neutral)."""
        cos = self.content.scores(histories, exclude_history=False, profile=profile)
        cos[:, ~self.content.has_text] = 0.0
        return cos

    def bonus(self, histories: list[list[str]]) -> torch.Tensor | None:
        """What the mix adds to the LLM's catalogue log-probs: w x cosine + v x SASRec-CE's log-prob
        (None: nothing, the LLM alone)."""
        parts = []
        if self.weight:
            parts.append(self.weight * self.cosines(histories, self.profile))
        if self.sasrec_weight:
            sasrec = sasrec_log_probs(self.sasrec, histories, self.llm.item_ids.items)
            parts.append(self.sasrec_weight * sasrec)
        return sum(parts[1:], parts[0]) if parts else None

    def placement(self, histories: list[list[str]]) -> RankChance | None:
        """Calibrated placement of added items for these histories, or None: slots (no added items,
        `new_item_placement: slots`, or a fit without chance tables)."""
        if (
            self.chance is None
            or self.llm.cfg.new_item_placement != "calibrated"
            or not self.llm.new_items.any()
        ):
            return None
        similarity = self.content.scores(histories, exclude_history=False, profile=PROFILE_ITEMS)
        return RankChance.from_tables(self.chance, similarity, self.alone, self.llm.cfg.new_item_boost)

    def recommend(
        self,
        histories: list[list[str]],
        k: int | None = None,
        exclude_history: bool | None = None,
        progress: bool = False,
        candidates: list[list[str]] | None = None,
        times: list[list[float] | None] | None = None,
        now: list[float | None] | None = None,
        domains: Domains = None,
    ) -> list[list[Recommendation]]:
        """As `Recommender.recommend`, the items ranked by the mixed score (the score returned)."""
        out: list[list[Recommendation]] = []
        bar = tqdm(total=len(histories), desc="recommending", unit="user", disable=not progress)
        for start in range(0, len(histories), CHUNK):
            part = slice(start, start + CHUNK)
            chunk = histories[part]
            for n, history in enumerate(chunk):  # a clear error before the cosine looks items up
                self.llm.check_history(history, where=f"history {start + n + 1}")
            out += self.llm.recommend(
                chunk, k, exclude_history,
                candidates=candidates[part] if candidates is not None else None,
                times=times[part] if times is not None else None,
                now=now[part] if now is not None else None,
                domains=domains[part] if isinstance(domains, list) else domains,
                bonus=self.bonus(chunk),
                chance=self.placement(chunk),
            )  # fmt: skip
            bar.update(len(chunk))
        bar.close()
        return out


def fit_content_mix(
    run_dir: str | Path,
    llm: Recommender | None = None,
    log: Callable[[str], None] = print,
    users: pd.DataFrame | None = None,
    sasrec_weights: str | Path | None = None,
) -> dict:
    """Pick the profile length and weights on validation (every validation user, or `users`): the LLM
    scores the catalogue once, each (L, w, v) is a sum and a rank. `sasrec_weights`: a SASRec-CE
    trained on the run's split (copied to RUN_DIR/mix/sasrec.pt), whose term is swept too;
    none: the LLM and the text only. Saves and returns content_mix.json."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    split = run.load_split()
    if not has_text(split):
        raise InputError("the content mix needs item text (titles or text columns); this catalogue has none",
                         field="generate.mix")  # fmt: skip
    t0 = time.time()
    llm = llm or Recommender.from_run(run.path)
    content = ContentRecommender(split, run_text_vectors(run, split.items, log))
    mixer = ContentMixRecommender(llm, content, 1, 0.0)
    users = split.eval_users("valid") if users is None else users
    histories, targets = split.histories(users, "valid"), users["valid"].tolist()
    log(f"content mix: the LLM scores the catalogue for {len(users)} validation users")
    scores = llm.score_catalogue(histories, cfg.generate.exclude_history, times=split.times(users, "valid"),
                                 domains=split.user_domains(users))  # fmt: skip
    columns = [llm.item_ids.index[t] for t in targets]
    folder = run.mix_dir
    folder.mkdir(exist_ok=True)
    sasrec_scores, sasrec_grid = torch.zeros_like(scores), (0.0,)
    if sasrec_weights is not None:
        sasrec = SasrecRecommender(split, cfg.baselines.sasrec)
        sasrec.load_checked(Path(sasrec_weights))
        sasrec.save(folder / SASREC_FILE)
        sasrec_scores, sasrec_grid = sasrec_log_probs(sasrec, histories, llm.item_ids.items), SASREC_WEIGHTS
    per_user: dict[tuple[int | None, float, float], np.ndarray] = {}
    for last in PROFILES:
        cos = mixer.cosines(histories, last)
        for w in WEIGHTS:
            for v in sasrec_grid:
                per_user[last, w, v] = target_ndcg(scores + w * cos + v * sasrec_scores, columns)
    sweep = {profile_name(p): {str(w): float(per_user[p, w, 0.0].mean()) for w in WEIGHTS} for p in PROFILES}

    def rank(key: tuple[int | None, float, float]) -> tuple[float, int, float, float]:
        return float(per_user[key].mean()), -PROFILES.index(key[0]), -key[1], -key[2]  # ties: the simpler

    def standard_error(gain: np.ndarray) -> float:
        return float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0

    best = max(per_user, key=rank)
    best_text = max((key for key in per_user if key[2] == 0.0), key=rank)
    # SASRec-CE's term is six more mixes for each text mix: keep it only beyond one standard error
    sasrec_gain = per_user[best] - per_user[best_text]
    sasrec_se = standard_error(sasrec_gain)
    if best[2] and not float(sasrec_gain.mean()) > sasrec_se:
        best = best_text
    last, weight, sasrec_weight = best
    # the best of 78 mixes on the same users beats the LLM alone by luck too: keep it only if its
    # gain is larger than one standard error of the per-user difference
    alone_key = (1, 0.0, 0.0)
    gain = per_user[best] - per_user[alone_key]
    se = standard_error(gain)
    kept = best == alone_key or float(gain.mean()) > se
    kept_last, kept_weight, kept_sasrec = best if kept else alone_key  # not kept: the LLM alone
    # where a target sits in the kept ranking and in text similarity to the latest item: the chances
    # that place items added after training (generate.new_item_placement: calibrated)
    kept_scores = scores + kept_weight * mixer.cosines(histories, kept_last) + kept_sasrec * sasrec_scores
    text = content.scores(histories, exclude_history=False, profile=PROFILE_ITEMS)
    chance = chance_tables(kept_scores, scores, text, columns)
    settings = {
        "profile": profile_name(kept_last),
        "weight": kept_weight,
        "sasrec_weight": kept_sasrec,
        "valid_users": len(users),
        "valid_ndcg@10": float(per_user[kept_last, kept_weight, kept_sasrec].mean()),
        "valid_ndcg@10_llm_alone": float(per_user[alone_key].mean()),
        "best_gain": round(float(gain.mean()), 5),
        "best_gain_se": round(se, 5),
        "valid_ndcg@10_by_profile_weight": sweep,
    }
    if sasrec_weights is not None:
        settings |= {
            "sasrec_weights": str(sasrec_weights),
            "sasrec_catalogue_items": len(split.items),
            "sasrec_gain": round(float(sasrec_gain.mean()), 5),
            "sasrec_gain_se": round(sasrec_se, 5),
            "valid_ndcg@10_by_sasrec_weight": {  # the best profile and text weight for each
                str(v): max(float(per_user[p, w, v].mean()) for p in PROFILES for w in WEIGHTS)
                for v in sasrec_grid
            },
        }
    settings |= {
        "rank_chance": chance,
        "fit_wall_s": round(time.time() - t0, 1),
    }
    with_sasrec = f" + SASRec-CE x {kept_sasrec}" if kept_sasrec else ""
    if kept:
        log(
            f"content mix: profile of the last {profile_name(kept_last)} items, weight {kept_weight}"
            f"{with_sasrec} (validation NDCG@10 {settings['valid_ndcg@10']:.4f}; LLM alone "
            f"{settings['valid_ndcg@10_llm_alone']:.4f})"
        )
    else:
        log(f"content mix: the best mix (last {profile_name(last)} items, weight {weight}, SASRec-CE x "
            f"{sasrec_weight}) gains {gain.mean():.4f} NDCG@10 on validation, within one standard error "
            f"({se:.4f}): the LLM alone")  # fmt: skip
    write_json(folder / "content_mix.json", settings)
    return settings
