"""First stage: import interactions and items from any supported source, and split them."""

from llmrec.data.importers import Catalog, load_catalog
from llmrec.data.split import (
    SplitData,
    item_domain_array,
    item_has_text,
    leave_one_out,
    newest_items,
    outside_domains,
)

__all__ = [
    "Catalog",
    "SplitData",
    "item_domain_array",
    "item_has_text",
    "leave_one_out",
    "load_catalog",
    "newest_items",
    "outside_domains",
]
