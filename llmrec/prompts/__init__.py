"""After ids: verbalise histories with editable templates (top-level prompts/) into prompt datasets."""

from llmrec.prompts.alignment import alignment_examples, item_texts
from llmrec.prompts.examples import (
    eval_examples,
    examples_path,
    load_examples,
    save_examples,
    training_examples,
    window_examples,
)
from llmrec.prompts.template import PromptBuilder, encode_prompts, find_template, load_template

__all__ = [
    "PromptBuilder",
    "alignment_examples",
    "encode_prompts",
    "eval_examples",
    "examples_path",
    "find_template",
    "item_texts",
    "load_examples",
    "load_template",
    "save_examples",
    "training_examples",
    "window_examples",
]
