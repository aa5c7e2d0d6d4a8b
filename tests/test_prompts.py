"""Prompts: editable templates, oldest-first truncation to a token budget."""

from __future__ import annotations

import pytest
from tiny import tiny_tokenizer

from llmrec.config import PromptConfig
from llmrec.errors import InputError
from llmrec.prompts import PromptBuilder, find_template

IDS = {f"i{n}": f"{1000 + n}" for n in range(50)}
TITLES = {f"i{n}": f"Film {n}" for n in range(50)}


def test_shipped_template_renders_ids_and_titles():
    builder = PromptBuilder(PromptConfig(), tiny_tokenizer(), IDS, TITLES)
    text = builder.render(["i1", "i2"])
    assert "1001 Film 1\n1002 Film 2\n" in text and text.endswith("Next item:\n")
    assert find_template("next_item.j2").parent.name in ("prompts", "_prompts")


def test_truncates_oldest_items_to_budget():
    tok = tiny_tokenizer()
    history = [f"i{n}" for n in range(40)]
    builder = PromptBuilder(PromptConfig(max_history=40, max_prompt_tokens=80), tok, IDS, TITLES)
    text = builder.render(history)
    assert len(tok(text, add_special_tokens=False).input_ids) <= 80
    assert "Film 39" in text and "Film 0\n" not in text
    # one more item would not fit: the cut is as late as possible
    shown = [line for line in text.splitlines() if line.startswith("10")]
    assert len(shown) >= 1
    longer = PromptBuilder(PromptConfig(max_history=40, max_prompt_tokens=400), tok, IDS, TITLES).render(
        history
    )
    assert len(tok(longer, add_special_tokens=False).input_ids) > 80


def test_max_history_and_no_titles():
    builder = PromptBuilder(PromptConfig(max_history=3, include_titles=False), tiny_tokenizer(), IDS, TITLES)
    text = builder.render([f"i{n}" for n in range(10)])
    assert "1007\n1008\n1009\n" in text and "1006" not in text and "Film" not in text


def test_user_template_and_errors(tmp_path):
    (tmp_path / "mine.j2").write_text("Items: {% for i in history %}{{ i.id }} {% endfor %}\nNext:\n")
    builder = PromptBuilder(PromptConfig(template=str(tmp_path / "mine.j2")), tiny_tokenizer(), IDS, TITLES)
    assert builder.render(["i1", "i2"]) == "Items: 1001 1002 \nNext:\n"
    (tmp_path / "bad.j2").write_text("{% for i in history %}")
    with pytest.raises(InputError, match="template syntax error"):
        PromptBuilder(PromptConfig(template=str(tmp_path / "bad.j2")), tiny_tokenizer(), IDS, TITLES)
    with pytest.raises(InputError, match="template not found"):
        PromptBuilder(PromptConfig(template="nope.j2"), tiny_tokenizer(), IDS, TITLES)
    (tmp_path / "long.j2").write_text("zq " * 40 + "{% for i in history %}{{ i.id }}{% endfor %}\n")
    with pytest.raises(InputError, match="longer than"):
        cfg = PromptConfig(template=str(tmp_path / "long.j2"), max_prompt_tokens=16)
        PromptBuilder(cfg, tiny_tokenizer(), IDS, TITLES).render(["i1"])


def test_encode_prompts_left_fills_to_a_block_multiple():
    from llmrec.prompts import encode_prompts

    tok = tiny_tokenizer()
    plain = tok(["Next item:", "A user interacted with these items, oldest first:"], add_special_tokens=False)
    aligned = encode_prompts(tok, ["Next item:", "A user interacted with these items, oldest first:"], 8)
    for ids, original in zip(aligned, plain.input_ids, strict=True):
        assert len(ids) % 8 == 0 and ids[len(ids) - len(original) :] == original
        assert set(ids[: len(ids) - len(original)]) <= {tok.pad_token_id}
    assert encode_prompts(tok, ["Next item:"], 1) == [plain.input_ids[0]]
