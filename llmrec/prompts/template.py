"""Prompt templates: find a Jinja2 template, verbalise a history, truncate it to a token budget,
and turn rendered prompts into (block-aligned) token ids."""

from __future__ import annotations

from pathlib import Path

import jinja2
from transformers import PreTrainedTokenizerBase

from llmrec.config import PromptConfig
from llmrec.errors import InputError


def template_dirs() -> list[Path]:
    """Where bare template names are looked up: ./prompts, the repo's prompts/, the installed copy."""
    here = Path(__file__).resolve().parent.parent
    return [Path.cwd() / "prompts", here.parent / "prompts", here / "_prompts"]


def find_template(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    for folder in template_dirs():
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"template not found (looked in {[str(d) for d in template_dirs()]})", path=name)


def load_template(name: str) -> tuple[jinja2.Template, Path]:
    """A template from prompts/ (or a path); syntax errors name the file and line."""
    path = find_template(name)
    try:
        template = jinja2.Environment(
            keep_trailing_newline=True, undefined=jinja2.StrictUndefined
        ).from_string(path.read_text())
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            f"template syntax error: {exc.message}", path=path, where=f"line {exc.lineno}"
        ) from exc
    return template, path


class PromptBuilder:
    """Renders histories into prompts that fit `max_prompt_tokens`, dropping the oldest items first."""

    def __init__(
        self,
        cfg: PromptConfig,
        tokenizer: PreTrainedTokenizerBase,
        id_of: dict[str, str],
        titles: dict[str, str] | None = None,
    ) -> None:
        self.template, self.source = load_template(cfg.template)
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.id_of = id_of
        self.titles = titles if cfg.include_titles and titles else {}

    def render(self, history: list[str]) -> str:
        """The prompt for `history` (oldest first), always ending in a newline."""
        items = history[-self.cfg.max_history :]

        def text(n: int) -> str:
            shown = [{"id": self.id_of[i], "title": self.titles.get(i, "")} for i in items[len(items) - n :]]
            out = self.template.render(history=shown)
            return out if out.endswith("\n") else out + "\n"

        def fits(n: int) -> bool:
            return (
                len(self.tokenizer(text(n), add_special_tokens=False).input_ids) <= self.cfg.max_prompt_tokens
            )

        if fits(len(items)):
            return text(len(items))
        lo, hi = 0, len(items)  # invariant: fits(lo), not fits(hi)
        if not fits(0):
            raise InputError(
                "the template alone is longer than prompts.max_prompt_tokens",
                path=self.source,
                field="max_prompt_tokens",
            )
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return text(lo)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], align_to: int) -> list[list[int]]:
    """Token ids of rendered prompts, left-filled with the pad token to a multiple of `align_to`.

    Why: vLLM's prefix cache keeps whole KV blocks only, and every beam step re-sends the prompt;
    a prompt that ends on a block boundary is reused in full instead of recomputing its last
    partial block per beam (15x faster beam steps measured on the CPU engine). Training and both
    backends use the same ids, so the model always sees what it was trained on.
    """
    ids = tokenizer(prompts, add_special_tokens=False).input_ids
    if align_to <= 1:
        return ids
    return [[tokenizer.pad_token_id] * (-len(p) % align_to) + p for p in ids]
