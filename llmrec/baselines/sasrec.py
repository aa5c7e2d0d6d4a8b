"""SASRec trained with full cross-entropy: the strongest simple baseline, on our split and metrics.

Kang & McAuley's self-attentive sequential recommender (causal Transformer over item embeddings),
trained as in "Turning Dross Into Gold Loss" (Klenitskiy & Vasilev, 2023): softmax cross-entropy
over *all* items at every position of each user's training sequence, not sampled BCE. Early
stopping on validation NDCG@10 or MRR@10 (full ranking, the same `ranking_metrics` the LLM is scored
by); the best epoch's weights are kept. Scores tie items' input and output embeddings. Two block
layouts: pre-LN (ours) and RecBole's, so our evaluation can be checked against RecBole's figures.

`item_rows: anchored` ties each item's row to its text, as `model.item_rows: anchored` does for the
LLM (model/anchored.py, whose text features are the LLM's own): row = a trained linear map of the
item's frozen text vector (the base model's, centred and unit length) + an id delta clipped to
`anchor.delta_bound` x the mean norm of the text rows, dropped for `anchor.delta_dropout` of the
items at each step. An item added after training gets the text path alone (`add_items`).
"""

from __future__ import annotations

import copy
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from llmrec.config import SasrecSettings
from llmrec.data import SplitData, item_domain_array, item_has_text, outside_domains
from llmrec.errors import InputError
from llmrec.evaluate.metrics import ranking_metrics
from llmrec.io import atomic_path


class AnchoredRows(nn.Module):
    """Item rows = map(text vector) + clip(delta) (module docstring); items without text keep a free
    row (their delta, unbounded). `text` is a persistent buffer so saved weights stand alone."""

    def __init__(self, text: torch.Tensor, has_text: torch.Tensor, centre: torch.Tensor, hidden: int,
                 bound: float, dropout: float, seed: int) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("text", text.float())
        self.register_buffer("has_text", has_text.bool())
        self.register_buffer("centre", centre.float())  # the training catalogue's: added items use it too
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))  # seeds each step's dropout
        self.register_buffer("added", torch.zeros(0, text.shape[1]), persistent=False)
        self.map = nn.Linear(text.shape[1], hidden, bias=False)
        nn.init.normal_(self.map.weight, std=0.02)
        self.delta = nn.Parameter(torch.randn(len(text), hidden) * 0.02)  # SASRec's own initial rows
        self.bound, self.dropout, self.seed = bound, dropout, seed

    def forward(self, drop: bool = False) -> torch.Tensor:
        """(items + added, hidden); `drop`: this training step's dropout of deltas."""
        text_rows = self.map(self.text)
        # the bound follows the text rows' scale, which training sets (the map starts at random)
        scale = text_rows[self.has_text].norm(dim=1).mean().detach()
        shrink = (self.bound * scale / self.delta.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)
        delta = torch.where(self.has_text.unsqueeze(1), self.delta * shrink, self.delta)
        if drop and self.dropout > 0:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.steps))
            dropped = (torch.rand(len(delta), generator=gen) < self.dropout).to(delta.device) & self.has_text
            delta = delta.masked_fill(dropped.unsqueeze(1), 0.0)
            self.steps += 1
        rows = torch.where(self.has_text.unsqueeze(1), text_rows, 0.0) + delta
        return torch.cat([rows, self.map(self.added)])


def unit_text_vectors(vectors: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Text vectors centred on the training catalogue and of unit length (cosine geometry)."""
    return nn.functional.normalize(vectors.float() - centre, dim=-1)


class SASRec(nn.Module):
    def __init__(self, num_items: int, cfg: SasrecSettings, anchor: AnchoredRows | None = None) -> None:
        super().__init__()
        self.max_len = cfg.max_len
        self.recbole = cfg.layout == "recbole"
        # None: free rows, the item embedding below. Registered even as None, so an anchor that `load`
        # attaches later takes this place in the state dict and a loaded model saves the same bytes.
        self.register_module("anchor", anchor)
        self.item_emb = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)  # 0 = padding
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden,
            cfg.heads,
            4 * cfg.hidden,
            cfg.dropout,
            "gelu",
            batch_first=True,
            norm_first=not self.recbole,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        # pre-ln normalises once after the last block; RecBole normalises the input and every residual
        self.norm = nn.LayerNorm(cfg.hidden)
        if self.recbole:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)
            for block in self.encoder.layers:  # attention's fused input projection is a bare Parameter
                nn.init.normal_(block.self_attn.in_proj_weight, std=0.02)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def item_table(self, drop: bool = False) -> torch.Tensor:
        """(items + 1, hidden) rows, row 0 the padding: the embedding, or the anchor's rows (`drop`:
        a training step's, drawn once and used for the inputs and the scores alike)."""
        if self.anchor is None:
            return self.item_emb.weight
        rows = self.anchor(drop)
        return torch.cat([rows.new_zeros(1, rows.shape[1]), rows])

    def forward(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, max_len) left-padded item indices -> hidden states (batch, max_len, hidden).

        Every sequence is padded to max_len, in training and in evaluation alike, as SASRec's
        reference code does: padding keys stay visible to attention (below), so a history's scores
        would otherwise depend on how much padding its batch happened to need."""
        length = seqs.shape[1]
        if length != self.max_len:
            raise ValueError(f"SASRec reads sequences padded to max_len={self.max_len}, got width {length}")
        positions = self.pos_emb.weight
        table = self.item_table() if table is None else table
        if self.recbole:
            x = self.norm(table[seqs] + positions)
        else:
            x = table[seqs] * table.shape[1] ** 0.5 + positions
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=seqs.device)
        # As in SASRec's PyTorch reference port, padding positions are zeroed after every block (a
        # "timeline mask") and padding keys stay visible. Masking them was measured and lost
        # validation NDCG@10 on ML-100K (0.1128 -> 0.1062; docs/experiments/2026-12-01-quality-notes.md).
        keep = (seqs > 0).unsqueeze(-1).to(x.dtype)
        h = self.dropout(x) * keep
        for layer in self.encoder.layers:
            h = layer(h, src_mask=causal, is_causal=True) * keep
        return h if self.recbole else self.norm(h)

    def scores(self, hidden: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Logits over items 1..n (column j = item index j+1)."""
        return hidden @ (self.item_table() if table is None else table)[1:].T


def _left_pad(seqs: list[list[int]], length: int) -> torch.Tensor:
    out = torch.zeros((len(seqs), length), dtype=torch.long)
    for r, s in enumerate(seqs):
        s = s[-length:]
        if s:
            out[r, length - len(s) :] = torch.tensor(s)
    return out


class SasrecRecommender:
    """Train on a prepared split; recommend top-K catalogue items for histories."""

    def __init__(self, split: SplitData, cfg: SasrecSettings, text_vectors: np.ndarray | None = None) -> None:
        """`text_vectors`: one base-model text embedding per catalogue item (split.items order), which
        `item_rows: anchored` needs; without any item text the rows are free (the caller says so)."""
        self.cfg = cfg
        self.items = split.items["item"].tolist()
        self.index = {item: n + 1 for n, item in enumerate(self.items)}
        self.item_domain = item_domain_array(split.items)
        torch.manual_seed(cfg.seed)  # the initial weights, too, come from the config's seed
        anchor = None
        # without vectors the rows come with weights `load` reads; `fit` needs them
        self.missing_text = cfg.item_rows == "anchored" and text_vectors is None
        if cfg.item_rows == "anchored" and text_vectors is not None:
            has_text = torch.from_numpy(item_has_text(split.items))
            if has_text.any():
                vectors = torch.as_tensor(np.asarray(text_vectors), dtype=torch.float32)
                centre = vectors[has_text].mean(0)
                text = unit_text_vectors(vectors, centre) * has_text.unsqueeze(1)
                anchor = self._anchor(text, has_text, centre)
        self.model = SASRec(len(self.items), cfg, anchor)

    def _anchor(self, text: torch.Tensor, has_text: torch.Tensor, centre: torch.Tensor) -> AnchoredRows:
        """The anchor over these text vectors with the settings' bound, dropout and seed."""
        cfg = self.cfg
        bound, dropout = cfg.anchor.delta_bound, cfg.anchor.delta_dropout
        return AnchoredRows(text, has_text, centre, cfg.hidden, bound, dropout, cfg.seed)

    @property
    def anchored(self) -> bool:
        return self.model.anchor is not None

    def add_items(self, items: list[str], text_vectors: np.ndarray) -> None:
        """Items added after training join the ranking with their text path's rows (anchored rows
        only: a free row has nothing to start from)."""
        if not self.anchored:
            raise InputError("only SASRec with item_rows: anchored can rank items it was not trained on",
                             field="baselines.sasrec.item_rows")  # fmt: skip
        anchor = self.model.anchor
        vectors = torch.as_tensor(np.asarray(text_vectors), dtype=torch.float32)
        anchor.added = torch.cat([anchor.added, unit_text_vectors(vectors, anchor.centre)])
        for item in items:
            self.items.append(item)
            self.index[item] = len(self.items)

    def encode(self, history: list[str]) -> list[int]:
        return [self.index[i] for i in history]

    @torch.no_grad()
    def logits(
        self, histories: list[list[str]], exclude_history: bool = True, domains: list[str] | None = None
    ) -> torch.Tensor:
        """(users, items) next-item scores, column j = `self.items[j]`; history items -inf if excluded,
        and with several domains items outside each history's `domains` entry."""
        self.model.eval()
        out = []
        for start in range(0, len(histories), 256):
            chunk = [self.encode(h) for h in histories[start : start + 256]]
            logits = self.model.scores(self.model(_left_pad(chunk, self.cfg.max_len))[:, -1])
            if exclude_history:
                for r, seq in enumerate(chunk):
                    logits[r, [i - 1 for i in seq]] = float("-inf")
            part = domains[start : start + 256] if domains is not None else None
            if (outside := outside_domains(self.item_domain, part)) is not None:
                logits[:, : outside.shape[1]][torch.from_numpy(outside)] = float("-inf")
            out.append(logits)
        return torch.cat(out)

    def recommend(
        self,
        histories: list[list[str]],
        k: int,
        exclude_history: bool = True,
        domains: list[str] | None = None,
    ) -> list[list[str]]:
        top = torch.topk(self.logits(histories, exclude_history, domains), k, dim=-1).indices.tolist()
        return [[self.items[j] for j in row] for row in top]

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.model.state_dict(), tmp)

    def save_item_embeddings(self, path: Path) -> None:
        """Write the learned item embeddings (`item`, `embedding`), the table `ids.embeddings: file` reads:
        semantic ids clustered from them carry what SASRec learned about which items follow which."""
        vectors = self.model.item_table()[1 : len(self.items) + 1].detach().float().numpy()
        table = pd.DataFrame({"item": self.items, "embedding": list(vectors)})
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        if "anchor.text" in state and not self.anchored:  # anchored weights carry their text vectors
            saved = (state[f"anchor.{key}"] for key in ("text", "has_text", "centre"))
            self.model.anchor = self._anchor(*saved)
        self.model.load_state_dict(state)

    def load_checked(self, path: Path) -> None:
        """`load` for weights a user names: a missing file, or one trained on another catalogue or
        with other settings, is an input error, not a stack trace."""
        if not path.is_file():
            raise InputError("SASRec weights not found (`llmrec baseline CONFIG` writes them)", path=path)
        try:
            self.load(path)
        except (RuntimeError, KeyError, pickle.UnpicklingError) as exc:
            raise InputError(
                f"not SASRec weights for this catalogue ({len(self.items)} items) and these baselines.sasrec "
                f"settings: {str(exc).splitlines()[0]}",
                path=path,
            ) from exc

    def fit(
        self,
        split: SplitData,
        exclude_history: bool = True,
        log: Callable[[str], None] = print,
    ) -> dict:
        """Full-CE training with early stopping on validation NDCG@10; keeps the best weights."""
        cfg = self.cfg
        if self.missing_text:
            raise InputError("baselines.sasrec.item_rows: anchored trains from the items' text vectors: "
                             "`llmrec baseline CONFIG --model sasrec` embeds them and trains it, and the "
                             "mixes load its weights", field="baselines.sasrec.item_rows")  # fmt: skip
        torch.manual_seed(cfg.seed)
        sequences = [self.encode(list(t)) for t in split.users["train"] if len(t) >= 2]
        inputs = _left_pad([s[:-1] for s in sequences], cfg.max_len)
        targets = _left_pad([s[1:] for s in sequences], cfg.max_len) - 1  # item index -> class; pad -> -1
        valid_users = split.eval_users("valid")
        valid_histories = split.histories(valid_users, "valid")
        valid_domains = split.user_domains(valid_users)
        valid_targets = valid_users["valid"].tolist()

        optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        best, best_state, best_epoch, waited, history = -1.0, None, 0, 0, []
        cap_s = None if cfg.max_minutes is None else cfg.max_minutes * 60
        stop_reason = "max_epochs"
        t0 = time.time()
        bar = tqdm(range(1, cfg.max_epochs + 1), desc="sasrec", unit="epoch")
        for epoch in bar:
            elapsed = time.time() - t0
            # at the pace so far, would this epoch end past the cap? (the first epoch always runs)
            if cap_s is not None and history and elapsed + elapsed / len(history) > cap_s:
                stop_reason = "max_minutes"
                break
            self.model.train()
            total = 0.0
            for idx in torch.split(torch.randperm(len(sequences)), cfg.batch_size):
                # the softmax over all items dominates the cost: take it at real positions only
                real = targets[idx] >= 0
                table = self.model.item_table(drop=True)  # one draw of the anchor's dropout a step
                logits = self.model.scores(self.model(inputs[idx], table)[real], table)
                loss = nn.functional.cross_entropy(logits, targets[idx][real])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            lists = self.recommend(valid_histories, 10, exclude_history, valid_domains)
            valid = ranking_metrics(valid_targets, lists, set(self.items))
            # MRR over top-10 lists is MRR@10: a target outside the list counts 0
            score = valid["ndcg@10"] if cfg.valid_metric == "ndcg@10" else valid["mrr"]
            mean_loss = total / len(sequences)
            row = {"epoch": epoch, "loss": round(mean_loss, 4), "valid_ndcg@10": round(valid["ndcg@10"], 5)}
            history.append(row | {"valid_mrr@10": round(valid["mrr"], 5)})
            bar.set_postfix(loss=f"{mean_loss:.3f}", valid=f"{score:.4f}")
            if score > best:
                best, best_state, best_epoch, waited = score, copy.deepcopy(self.model.state_dict()), epoch, 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    stop_reason = "patience"
                    break
        bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        wall = time.time() - t0
        log(f"sasrec: best valid {cfg.valid_metric} {best:.4f} at epoch {best_epoch} of {len(history)} "
            f"({wall:.0f}s, stopped by {stop_reason})")  # fmt: skip
        return {
            "model": "sasrec",
            "loss": "full softmax cross-entropy over all items",
            "settings": cfg.model_dump(),
            "epochs_run": len(history),
            "best_epoch": best_epoch,
            "stop_reason": stop_reason,
            f"best_valid_{cfg.valid_metric}": round(best, 5),
            "train_wall_s": round(wall, 1),
            "log": history,
        }
