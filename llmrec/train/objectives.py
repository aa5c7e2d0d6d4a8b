"""Training objectives: the loss of a batch, chosen before the loop (`build_objective`).

Both compute the output head only at the positions where some example of the batch has a label (a
next-item example has ~4 labelled tokens in a ~128-token prompt; a full-vocabulary head over every
position is most of the step's memory and a large share of its time on a small model):

- `TokenLoss`: next-token cross-entropy over the vocabulary on the labelled tokens (the id tokens
  and their end token), what `model(**batch).loss` computes.
- `CatalogueLoss` (atomic ids): at every position whose next token is an item token, a softmax over
  the catalogue's tokens only: SASRec's full cross-entropy objective, on a pretrained body (and the
  vocabulary softmax where an alignment task's answer is text).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedModel

from llmrec.config import Config
from llmrec.errors import InputError
from llmrec.ids import ItemIds
from llmrec.model.anchored import ItemAnchor
from llmrec.train.packing import block_causal_mask


def model_parts(model: PreTrainedModel | PeftModel) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(decoder body, output head) of a causal LM, through a peft wrapper (LoRA layers and trainable
    token rows are injected in place, so calling the parts calls them too)."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return base.get_decoder(), base.get_output_embeddings()


def decoder_inputs(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the decoder is called with: the batch's ids and mask, or for packed rows (a batch with
    `segment_ids`) each example's own positions and the block-diagonal mask that keeps it apart (and
    lets it see the row's shared header)."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "segment_ids" in batch:
        dtype = model.get_input_embeddings().weight.dtype
        inputs["attention_mask"] = block_causal_mask(batch["segment_ids"], batch["attention_mask"], dtype)
        inputs["position_ids"] = batch["position_ids"]
    return inputs


def labelled_logits(
    model, batch: dict[str, torch.Tensor], rows: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Output logits at the positions where some row of the batch has a label (all vocabulary rows,
    or only `rows`), and the labels there (-100 where that row has none), shifted by one.

    In one process the decoder and head are called directly, and with `rows` only those rows of the
    head are computed. Under DistributedDataParallel the call must go through the wrapper's forward
    (it synchronises gradients), so the model's own `logits_to_keep` selects the positions."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        labels = batch["labels"][:, 1:]
        keep = (labels != -100).any(0).nonzero().squeeze(-1)
        out = model(**decoder_inputs(model.module, batch), logits_to_keep=keep)
        logits = out.logits if rows is None else out.logits[..., rows]
        return logits, labels[:, keep]
    hidden, labels = labelled_states(model, batch)
    _, head = model_parts(model)
    return (head(hidden) if rows is None else item_logits(head, hidden, rows)), labels


def labelled_states(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's last hidden states at the positions where some row has a label, and the labels
    there, shifted by one (one process: the decoder is called directly)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        raise InputError(
            "model.item_rows: anchored trains in one process (its rows are computed outside the "
            "model's forward, which DistributedDataParallel synchronises); train with one process or "
            "item_rows: free",
            field="model.item_rows",
        )
    labels = batch["labels"][:, 1:]
    keep = (labels != -100).any(0).nonzero().squeeze(-1)
    decoder, _ = model_parts(model)
    hidden = decoder(**decoder_inputs(model, batch)).last_hidden_state
    return hidden[:, keep], labels[:, keep]


class TokenLoss:
    """Next-token cross-entropy on the labelled tokens."""

    def __call__(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, labels = labelled_logits(model, batch)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


class CatalogueLoss:
    """Softmax over the catalogue's item tokens at each position whose next token is an item; at
    positions whose next token is text (an alignment task's id -> text answer), the vocabulary
    softmax. The end token after an item is certain and carries no loss. With an `anchor`
    (`anchored.ItemAnchor`), the catalogue's rows are this step's anchored rows, in and out."""

    def __init__(self, item_token_ids: list[int], vocab_size: int, end_token_id: int | None = None,
                 anchor: ItemAnchor | None = None) -> None:  # fmt: skip
        self.item_token_ids = torch.tensor(item_token_ids)
        self.index = torch.full((vocab_size,), -100, dtype=torch.long)  # token id -> catalogue index
        self.index[self.item_token_ids] = torch.arange(len(item_token_ids))
        self.end_token_id = end_token_id
        self.anchor = anchor

    def __call__(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.anchor is None:
            return self.loss(model, batch, None)
        with self.anchor.training_step() as rows:
            return self.loss(model, batch, rows)

    def loss(self, model, batch: dict[str, torch.Tensor], rows: torch.Tensor | None) -> torch.Tensor:
        device = batch["labels"].device
        labels = batch["labels"]
        items = self.index.to(device)[labels.clamp(min=0)].where(
            labels >= 0, torch.tensor(-100, device=device)
        )
        text = labels.where((labels >= 0) & (items < 0), torch.tensor(-100, device=device))
        if self.end_token_id is not None:
            text = text.masked_fill(text == self.end_token_id, -100)
        if not (text >= 0).any():  # next-item batches: only the catalogue's rows of the head
            if rows is not None:
                hidden, targets = labelled_states(model, dict(batch, labels=items))
                logits = F.linear(hidden, rows.to(hidden.dtype))
            else:
                logits, targets = labelled_logits(
                    model, dict(batch, labels=items), self.item_token_ids.to(device)
                )
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        # a batch with text answers: the whole head where some row has a label, each position scored
        # by its kind (catalogue or vocabulary); the loss is the mean over all labelled positions
        if rows is not None:
            hidden, _ = labelled_states(model, dict(batch, labels=items.where(items >= 0, text)))
            logits = model_parts(model)[1](hidden)
            item_scores = F.linear(hidden, rows.to(hidden.dtype))
        else:
            logits, _ = labelled_logits(model, dict(batch, labels=items.where(items >= 0, text)))
            item_scores = logits[..., self.item_token_ids.to(device)]
        keep = ((items >= 0) | (text >= 0))[:, 1:].any(0)
        item_targets, text_targets = items[:, 1:][:, keep], text[:, 1:][:, keep]
        on_item, on_text = item_targets >= 0, text_targets >= 0
        item_loss = F.cross_entropy(item_scores[on_item].float(), item_targets[on_item], reduction="sum")
        text_loss = F.cross_entropy(logits[on_text].float(), text_targets[on_text], reduction="sum")
        return (item_loss + text_loss) / (on_item.sum() + on_text.sum())


def item_logits(head: torch.nn.Module, states: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Logits of the catalogue's tokens only: `states` times those rows of the output head (the rows
    as trained: peft's trainable-token rows replace the frozen ones)."""
    adapter = getattr(head, "token_adapter", None)  # peft's TrainableTokensWrapper
    if adapter is not None and not adapter.disable_adapters and adapter.active_adapters:
        weight = adapter.get_merged_weights(adapter.active_adapters)
    else:
        weight = head.weight
    bias = head.bias[rows] if getattr(head, "bias", None) is not None else None
    if len(rows) > 1 and bool((rows.diff() == 1).all()):  # the usual case: ids added in one run of tokens
        return F.linear(states, weight[int(rows[0]) : int(rows[-1]) + 1], bias)  # a view, no copy
    return F.linear(states, weight[rows], bias)


def build_objective(
    cfg: Config, ids: ItemIds, tokenizer, end_token_id: int | None = None, anchor: ItemAnchor | None = None
) -> TokenLoss | CatalogueLoss:
    """`end_token_id`: the token that ends an id (line break or EOS), certain after an atomic id;
    `anchor`: the anchored item rows, if the run has them."""
    if ids.scheme == "atomic":
        return CatalogueLoss(tokenizer.convert_tokens_to_ids(ids.ids), len(tokenizer), end_token_id, anchor)
    return TokenLoss()
