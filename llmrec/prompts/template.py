"""Prompt templates: find a Jinja2 template, verbalise a history, truncate it to a token budget,
and turn rendered prompts into (block-aligned) token ids."""

from __future__ import annotations

from pathlib import Path

import jinja2
from transformers import PreTrainedTokenizerBase

from llmrec.config import PromptConfig
from llmrec.errors import InputError
from llmrec.prompts.time import WORDS, bucket, default_now, gap_code, history_gaps


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
    """Renders histories into prompts that fit `max_prompt_tokens`, dropping the oldest items first,
    and encodes them as the token ids the model sees, in training and on both backends.

    `objective: next_item`: the prompt is the rendered template, tokenized as a whole; the answer is
    the next item's id and EOS. `objective: every_item`: the template lists the history, each id
    followed by `prompts.separator` (nothing for atomic ids, a line break otherwise), and nothing
    follows the list; the prompt is the template's header followed by each item's id tokens and
    separator, and the answer is the next id. A training window is then a prompt whose every item
    after the first is a target (`encode_window`), with the same ids a prompt of that prefix would
    get. Atomic ids with no separator cost one token an item.

    `prompts.time: gaps` (`llmrec.prompts.time`): a history's item times reach the model, as one
    gap code per token beside the ids (`gap_codes`, `encode_window`) for item lists, as words in the
    template (`item.gap`, `now_gap`) for next_item prompts. Without times (None) a prompt is as it
    would be without the option.
    """

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
        self.timed = cfg.time == "gaps"
        self._lines: dict[str, list[int]] = {}
        if cfg.objective == "every_item":
            self._check_list_template()
            self.header_ids = self._tokens(self._text([]))
            self.end_token_id = self._line_break_id()
            if len(self.header_ids) > cfg.max_prompt_tokens:
                raise self._template_too_long()
        else:
            self.header_ids = []  # a next-item prompt is one text; no header is shared between examples
            self.end_token_id = tokenizer.eos_token_id

    def _template_too_long(self) -> InputError:
        return InputError(
            "the template alone is longer than prompts.max_prompt_tokens",
            path=self.source,
            field="max_prompt_tokens",
        )

    def _tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _title(self, item: str) -> str:
        """The item's title, cut to `max_title_chars` so that one long title cannot push the rest of
        the history out of the prompt (truncation drops whole items, oldest first)."""
        title = " ".join(self.titles.get(item, "").split())
        limit = self.cfg.max_title_chars
        return title if len(title) <= limit else title[: max(1, limit - 3)].rstrip() + "..."

    def _text(self, items: list[str], gaps: list[str] | None = None, now_gap: str = "") -> str:
        """The template rendered for `items`; `gaps`: each item's gap words (time since the one
        before), `now_gap`: the words for the time since the last item (next_item prompts)."""
        gaps = gaps or [""] * len(items)
        shown = [
            {"id": self.id_of[i], "title": self._title(i), "gap": g} for i, g in zip(items, gaps, strict=True)
        ]
        out = self.template.render(history=shown, separator=self.cfg.separator, now_gap=now_gap)
        if self.cfg.objective == "every_item" and items:
            return out  # ends with the last id and its separator (none for atomic ids)
        return out if out.endswith("\n") else out + "\n"

    def _check_list_template(self) -> None:
        probe = list(self.id_of)[:2]
        expected = self._text([]) + "".join(self.id_of[i] + self.cfg.separator for i in probe)
        if self._text(probe) != expected:
            raise InputError(
                "prompts.objective every_item needs a template that lists the history, each id followed "
                f"by {{{{ separator }}}} (here {self.cfg.separator!r}: prompts.item_separator "
                f"{self.cfg.item_separator}), with nothing after the list (e.g. item_list.j2), and "
                "prompts.include_titles: false",
                path=self.source,
                field="objective",
            )

    def _line_break_id(self) -> int:
        ids = self._tokens("\n")
        if len(ids) != 1:
            raise InputError(
                f"the tokenizer splits a line break into {len(ids)} tokens; every_item needs one",
                field="prompts.objective",
            )
        return ids[0]

    def line_ids(self, item: str) -> list[int]:
        """every_item: the tokens of one listed item: its id, then the line break unless the ids are
        atomic and listed with no separator (also the answer)."""
        if item not in self._lines:
            end = [self.end_token_id] if self.cfg.separator else []
            self._lines[item] = [*self._tokens(self.id_of[item]), *end]
        return self._lines[item]

    def shown(self, history: list[str], times: list[float] | None = None, now: float | None = None) -> int:
        """How many of the most recent items of `history` the prompt shows (at least one)."""
        n = self._shown(history, self._gap_words(history, times, now))
        if history and n == 0:
            raise InputError(
                "not even the most recent history item fits prompts.max_prompt_tokens "
                f"({self.cfg.max_prompt_tokens}): raise it or lower prompts.max_title_chars",
                path=self.source,
                field="prompts.max_prompt_tokens",
            )
        return n

    def _gap_words(
        self, history: list[str], times: list[float] | None, now: float | None
    ) -> tuple[list[str], str] | None:
        """next_item prompts with times: (each item's gap words, the words for the gap to `now`)."""
        if not (self.timed and times is not None and self.cfg.objective == "next_item" and history):
            return None
        before, _ = history_gaps(times)
        now = default_now(times) if now is None else now
        return [WORDS[b] for b in before], WORDS[bucket(now - times[-1])]

    def _shown(self, history: list[str], words: tuple[list[str], str] | None = None) -> int:
        items = history[-self.cfg.max_history :]
        gaps = words[0][-len(items) :] if words else None
        now_gap = words[1] if words else ""
        if self.cfg.objective == "every_item":
            used, n = len(self.header_ids), 0
            for item in reversed(items):
                used += len(self.line_ids(item))
                if used > self.cfg.max_prompt_tokens:
                    break
                n += 1
            return n

        def fits(n: int) -> bool:
            text = self._text(items[len(items) - n :], gaps and gaps[len(gaps) - n :], now_gap)
            return len(self._tokens(text)) <= self.cfg.max_prompt_tokens

        if fits(len(items)):
            return len(items)
        lo, hi = 0, len(items)  # invariant: fits(lo), not fits(hi)
        if not fits(0):
            raise self._template_too_long()
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo

    def render(self, history: list[str], times: list[float] | None = None, now: float | None = None) -> str:
        """The prompt for `history` (oldest first) as text, always ending in a newline; with
        `prompts.time: gaps` and the items' `times`, the gaps (and the one to `now`) as words."""
        n = self.shown(history, times, now)
        words = self._gap_words(history, times, now)
        if words is None:
            return self._text(history[len(history) - n :])
        return self._text(history[len(history) - n :], words[0][len(history) - n :], words[1])

    def encode(
        self,
        histories: list[list[str]],
        times: list[list[float] | None] | None = None,
        nows: list[float | None] | None = None,
    ) -> list[list[int]]:
        """Prompt token ids, left-filled to a multiple of `align_to` (see `encode_prompts`).
        `times`, `nows`: each history's item times and request time (next_item prompts show the
        gaps as words; item lists carry them in `gap_codes`)."""
        if self.cfg.objective == "next_item":
            times = times or [None] * len(histories)
            nows = nows or [None] * len(histories)
            prompts = [self.render(h, t, n) for h, t, n in zip(histories, times, nows, strict=True)]
            return encode_prompts(self.tokenizer, prompts, self.cfg.align_to)
        out = []
        for history in histories:
            n = self.shown(history)
            ids = [
                *self.header_ids,
                *(t for item in history[len(history) - n :] for t in self.line_ids(item)),
            ]
            out.append(self._fill(ids))
        return out

    def gap_codes(
        self,
        histories: list[list[str]],
        times: list[list[float] | None] | None,
        nows: list[float | None] | None = None,
    ) -> list[list[int]] | None:
        """Item lists with `prompts.time: gaps`: one gap code per token of each `encode`d prompt
        (`llmrec.prompts.time.gap_code`; 0 on the header, the fill and a history without times);
        None when the prompts carry no gap codes (option off, next_item prompts, no times at all)."""
        if not (self.timed and self.cfg.objective == "every_item" and times) or all(t is None for t in times):
            return None
        nows = nows or [None] * len(histories)
        out = []
        for history, stamps, now in zip(histories, times, nows, strict=True):
            n = self.shown(history)
            cut = len(history) - n
            if stamps is None:
                codes = [0] * (len(self.header_ids) + sum(len(self.line_ids(i)) for i in history[cut:]))
            else:
                before, after = history_gaps(stamps, now)
                codes = [0] * len(self.header_ids) + self._line_codes(
                    history[cut:], before[cut:], after[cut:]
                )
            out.append([0] * (-len(codes) % max(1, self.cfg.align_to)) + codes)
        return out

    def _line_codes(self, items: list[str], before: list[int], after: list[int]) -> list[int]:
        """Gap codes of listed items' tokens: `before` on an item's first token, `after` on its last
        (both on the one token of an atomic id), nothing in between."""
        codes: list[int] = []
        for item, b, a in zip(items, before, after, strict=True):
            width = len(self.line_ids(item))
            if width == 1:
                codes.append(gap_code(b, a))
            else:
                codes += [gap_code(b, 0), *[0] * (width - 2), gap_code(0, a)]
        return codes

    def encode_window(
        self, items: list[str], times: list[float] | None = None, before_first: float | None = None
    ) -> tuple[list[int], list[int]] | tuple[list[int], list[int], list[int]]:
        """every_item training example: (input_ids, labels) of the window listed as a prompt, with
        labels on every item after the first (-100 elsewhere). The context of each target is token
        for token what `encode` gives that prefix as a prompt, but for the left fill. With
        `prompts.time: gaps` and the window's item `times` (`before_first`: the time of the item
        before the window, None if none), also the gap codes: each target's context carries the
        gaps a prompt of that prefix would, with the request at the target's own time."""
        ids, labels = list(self.header_ids), [-100] * len(self.header_ids)
        for n, item in enumerate(items):
            line = self.line_ids(item)
            ids += line
            labels += [-100] * len(line) if n == 0 else line
        fill = self._fill(ids)
        labels = [-100] * (len(fill) - len(ids)) + labels
        if not (self.timed and times is not None):
            return fill, labels
        before, after = history_gaps(times, before_first=before_first)
        codes = [0] * len(self.header_ids) + self._line_codes(items, before, after)
        return fill, labels, [0] * (len(fill) - len(ids)) + codes

    def _fill(self, ids: list[int]) -> list[int]:
        return [self.tokenizer.pad_token_id] * (-len(ids) % max(1, self.cfg.align_to)) + ids


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
