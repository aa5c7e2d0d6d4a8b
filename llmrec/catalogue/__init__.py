"""After generate: change a trained run's catalogue without retraining (`llmrec items`)."""

from llmrec.catalogue.change import add_items, remove_items

__all__ = ["add_items", "remove_items"]
