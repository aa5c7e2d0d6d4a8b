"""Prompts: editable templates, oldest-first truncation to a token budget."""

from __future__ import annotations

import pandas as pd
import pytest
from tiny import tiny_tokenizer

from llmrec.config import Config, PromptConfig
from llmrec.errors import InputError
from llmrec.prompts import PromptBuilder, find_template


def NextItem(**settings) -> PromptConfig:  # noqa: N802
    """The next_item prompt with titles (the default recipe lists bare ids)."""
    return PromptConfig(**({"objective": "next_item", "include_titles": True} | settings))


IDS = {f"i{n}": f"{1000 + n}" for n in range(50)}
TITLES = {f"i{n}": f"Film {n}" for n in range(50)}


def test_shipped_template_renders_ids_and_titles():
    builder = PromptBuilder(NextItem(), tiny_tokenizer(), IDS, TITLES)
    text = builder.render(["i1", "i2"])
    assert "1001 Film 1\n1002 Film 2\n" in text and text.endswith("Next item:\n")
    assert find_template("next_item.j2").parent.name in ("prompts", "_prompts")


def test_truncates_oldest_items_to_budget():
    tok = tiny_tokenizer()
    history = [f"i{n}" for n in range(40)]
    builder = PromptBuilder(NextItem(max_history=40, max_prompt_tokens=80), tok, IDS, TITLES)
    text = builder.render(history)
    assert len(tok(text, add_special_tokens=False).input_ids) <= 80
    assert "Film 39" in text and "Film 0\n" not in text
    # one more item would not fit: the cut is as late as possible
    shown = [line for line in text.splitlines() if line.startswith("10")]
    assert len(shown) >= 1
    longer = PromptBuilder(NextItem(max_history=40, max_prompt_tokens=400), tok, IDS, TITLES).render(history)
    assert len(tok(longer, add_special_tokens=False).input_ids) > 80


def test_max_history_and_no_titles():
    builder = PromptBuilder(NextItem(max_history=3, include_titles=False), tiny_tokenizer(), IDS, TITLES)
    text = builder.render([f"i{n}" for n in range(10)])
    assert "1007\n1008\n1009\n" in text and "1006" not in text and "Film" not in text


def test_user_template_and_errors(tmp_path):
    (tmp_path / "mine.j2").write_text("Items: {% for i in history %}{{ i.id }} {% endfor %}\nNext:\n")
    builder = PromptBuilder(NextItem(template=str(tmp_path / "mine.j2")), tiny_tokenizer(), IDS, TITLES)
    assert builder.render(["i1", "i2"]) == "Items: 1001 1002 \nNext:\n"
    (tmp_path / "bad.j2").write_text("{% for i in history %}")
    with pytest.raises(InputError, match="template syntax error"):
        PromptBuilder(NextItem(template=str(tmp_path / "bad.j2")), tiny_tokenizer(), IDS, TITLES)
    with pytest.raises(InputError, match="template not found"):
        PromptBuilder(NextItem(template="nope.j2"), tiny_tokenizer(), IDS, TITLES)
    (tmp_path / "long.j2").write_text("zq " * 40 + "{% for i in history %}{{ i.id }}{% endfor %}\n")
    with pytest.raises(InputError, match="longer than"):
        cfg = NextItem(template=str(tmp_path / "long.j2"), max_prompt_tokens=16)
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


def list_builder(**settings) -> PromptBuilder:
    cfg = PromptConfig(objective="every_item", template="item_list.j2", include_titles=False, **settings)
    return PromptBuilder(cfg, tiny_tokenizer(), IDS, TITLES)


def test_every_item_prompt_is_the_header_and_one_line_per_item():
    builder = list_builder(max_history=3, align_to=1)
    tok = builder.tokenizer
    history = [f"i{n}" for n in range(10)]
    text = builder.render(history)
    assert text.endswith("1007\n1008\n1009\n") and "1006" not in text
    (ids,) = builder.encode([history])
    line = [tok("\n", add_special_tokens=False).input_ids[0]]
    expected = tok(text.split("\n")[0] + "\n", add_special_tokens=False).input_ids
    for n in (7, 8, 9):
        expected += tok(f"{1000 + n}", add_special_tokens=False).input_ids + line
    assert ids == expected and builder.end_token_id == line[0]
    # the token budget drops the oldest items, as for next_item prompts
    budget = len(builder.header_ids) + 2 * len(builder.line_ids("i9"))
    (short,) = list_builder(max_history=3, align_to=1, max_prompt_tokens=budget).encode([history])
    assert short == ids[: len(builder.header_ids)] + ids[len(ids) - 2 * len(builder.line_ids("i9")) :]


def test_every_item_window_contexts_are_the_prompts_of_its_prefixes():
    builder = list_builder(max_history=4, align_to=8)
    window = [f"i{n}" for n in range(5)]
    ids, labels = builder.encode_window(window)
    assert len(ids) == len(labels) and len(ids) % 8 == 0
    pads = ids.index(builder.header_ids[0])
    assert set(ids[:pads]) <= {builder.tokenizer.pad_token_id}
    # every item after the first is a target, its id tokens and the line break; nothing else is
    targets = [t for t in labels if t != -100]
    assert targets == [t for item in window[1:] for t in builder.line_ids(item)]
    pos = len(ids) - sum(len(builder.line_ids(i)) for i in window[1:])
    for t, item in enumerate(window[1:], start=1):
        (prompt,) = builder.encode([window[:t]])
        start = prompt.index(builder.header_ids[0])
        assert ids[pads:pos] == prompt[start:]  # the context is token for token the prompt
        assert labels[pos : pos + len(builder.line_ids(item))] == builder.line_ids(item)
        pos += len(builder.line_ids(item))


def test_every_item_windows_cover_each_target_once():
    from llmrec.data import SplitData
    from llmrec.prompts import window_examples

    seq = [f"i{n}" for n in range(12)]
    users = pd.DataFrame(
        {"user": ["u1", "u2"], "train": [seq, seq[:1]], "valid": [None] * 2, "test": [None] * 2}
    )
    split = SplitData(items=pd.DataFrame({"item": seq, "title": seq}), users=users)
    builder = list_builder(max_history=4)
    windows = window_examples(split, builder, max_per_user=100)["items"].tolist()
    targets = [item for w in windows for item in w[1:]]
    assert sorted(targets, key=seq.index) == seq[1:]  # each once; a one-item user has none
    assert all(2 <= len(w) <= 5 for w in windows) and windows[0] == seq[-5:]
    recent = window_examples(split, builder, max_per_user=6)["items"].tolist()
    assert sorted(t for w in recent for t in w[1:]) == sorted(seq[-6:])


def test_every_item_needs_a_list_template(tmp_path):
    with pytest.raises(InputError, match="each id followed by") as err:
        PromptBuilder(
            PromptConfig(objective="every_item", template="next_item.j2"), tiny_tokenizer(), IDS, TITLES
        )
    assert "next_item.j2" in str(err.value)  # its "Next item:" line follows the list
    titled = tmp_path / "titled.j2"
    titled.write_text(
        "Items:\n{% for i in history %}{{ i.id }}{% if i.title %} {{ i.title }}{% endif %}\n{% endfor %}"
    )
    cfg = PromptConfig(objective="every_item", template=str(titled), include_titles=True)
    with pytest.raises(InputError, match="include_titles") as err:
        PromptBuilder(cfg, tiny_tokenizer(), IDS, TITLES)
    assert "titled.j2" in str(err.value)
    without_titles = PromptBuilder(
        cfg.model_copy(update={"include_titles": False}), tiny_tokenizer(), IDS, TITLES
    )
    assert without_titles.render(["i1"]) == "Items:\n1001\n"


def one_token_builder(**settings) -> PromptBuilder:
    """Atomic ids as the default recipe has them: one added token an item, no separator."""
    tok = tiny_tokenizer()
    ids = {f"i{n}": f"<item_{n}>" for n in range(12)}
    tok.add_tokens(list(ids.values()), special_tokens=True)
    cfg = Config.model_validate({"prompts": {"align_to": 1, **settings}}).prompts
    return PromptBuilder(cfg, tok, ids)


def test_atomic_ids_are_listed_one_token_an_item_with_no_separator():
    assert Config().prompts.item_separator == "none"  # the default recipe: atomic ids, every_item
    assert Config.model_validate({"ids": {"scheme": "semantic"}}).prompts.item_separator == "line_break"
    with pytest.raises(ValueError, match="needs atomic ids"):
        Config.model_validate({"ids": {"scheme": "title"}, "prompts": {"item_separator": "none"}})
    builder = one_token_builder()
    tok = builder.tokenizer
    history = [f"i{n}" for n in range(6)]
    (ids,) = builder.encode([history])
    assert ids == builder.header_ids + tok.convert_tokens_to_ids([f"<item_{n}>" for n in range(6)])
    assert builder.render(history) == "Items:\n" + "".join(f"<item_{n}>" for n in range(6))
    assert all(len(builder.line_ids(i)) == 1 for i in history)


def test_one_token_windows_give_each_target_the_prompt_of_its_prefix():
    builder = one_token_builder(max_history=8)
    window = [f"i{n}" for n in (3, 1, 4, 1, 5, 9)]
    ids, labels = builder.encode_window(window)
    header = len(builder.header_ids)
    assert len(ids) == header + len(window)  # one token an item, nothing for pad or separators
    for t in range(1, len(window)):
        (prompt,) = builder.encode([window[:t]])  # what a request with this history is sent
        assert ids[: header + t] == prompt
        assert labels[header + t] == builder.line_ids(window[t])[0] == ids[header + t]
    assert labels[: header + 1] == [-100] * (header + 1)  # the header and the first item: context only


def test_one_long_title_is_cut_not_the_history():
    """A 10,000-character title used to push every history item out of the prompt, silently."""
    titles = {**TITLES, "i9": "Epic " * 2000}
    builder = PromptBuilder(
        NextItem(max_prompt_tokens=200, max_title_chars=40), tiny_tokenizer(), IDS, titles
    )
    text = builder.render(["i7", "i8", "i9"])
    assert "1007 Film 7\n1008 Film 8\n" in text
    assert "1009 Epic Epic" in text and "..." in text and text.count("Epic") < 12
    tiny = PromptBuilder(NextItem(max_prompt_tokens=16), tiny_tokenizer(), IDS, TITLES)
    with pytest.raises(InputError, match="not even the most recent history item fits"):
        tiny.render(["i1"])


def test_alignment_examples_tie_ids_to_text():
    from llmrec.prompts import alignment_examples, item_texts

    tok = tiny_tokenizer()
    items = pd.DataFrame(
        {"item": ["i1", "i2", "i3"], "title": ["Film 1", "", ""], "text": ["drama", "comedy, 1990s", ""]}
    )
    texts = item_texts(items, max_chars=100)
    assert texts == {"i1": "Film 1", "i2": "comedy, 1990s"}  # title first, else text; i3 has none
    end = tok.eos_token_id
    examples = alignment_examples({"text_to_id": 1.0, "id_to_text": 0.5}, 4, texts, IDS, tok, end, log=print)
    assert len(examples) == 4 + 2
    prompt_of = {}
    for ex in examples:
        answer = [t for t, label in zip(ex["input_ids"], ex["labels"], strict=True) if label != -100]
        assert answer == [t for t in ex["labels"] if t != -100] and answer[-1] == end
        prompt_of[tok.decode(ex["input_ids"][: len(ex["input_ids"]) - len(answer)])] = tok.decode(answer[:-1])
    text_to_id = {p: a for p, a in prompt_of.items() if "Its id:" in p}
    assert {a.strip() for a in text_to_id.values()} == {"1001", "1002"}  # every item with text, cycled
    assert any("Film 1" in p and a.strip() == "1001" for p, a in text_to_id.items())
    id_to_text = {p: a for p, a in prompt_of.items() if "is described as" in p}
    assert all(
        ("1001" in p and a == "Film 1") or ("1002" in p and a == "comedy, 1990s")
        for p, a in id_to_text.items()
    )

    said = []
    no_text = pd.DataFrame({"item": ["i1"], "title": [""], "text": [""]})
    assert (
        alignment_examples({"text_to_id": 1.0}, 4, item_texts(no_text, 100), IDS, tok, end, log=said.append)
        == []
    )
    assert "skipped" in said[0] and "no item has a title or text" in said[0]
