"""After data: item identifiers (semantic, title, numeric) built from training data only."""

from llmrec.ids.item_ids import ItemIds, build_item_ids, id_token_ids

__all__ = ["ItemIds", "build_item_ids", "id_token_ids"]
