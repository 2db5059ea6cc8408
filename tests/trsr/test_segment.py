"""Segmentation into blocks and item-text rendering to a token budget."""

import numpy as np
import pytest

from recllm.trsr.segment import SegmentConfig, clean_item_text, render_item_texts, segment_history


@pytest.fixture(scope="module")
def tokenizer():
    from recllm.llm.backbone import smollm2_tokenizer

    return smollm2_tokenizer()


def test_short_history_is_one_partial_block():
    blocks = segment_history([7, 8, 9])
    assert [b.tolist() for b in blocks] == [[7, 8, 9]]


def test_blocks_are_anchored_at_the_first_item_and_newest_kept():
    cfg = SegmentConfig(block_size=2, max_blocks=3)
    blocks = segment_history(np.arange(9), cfg)
    assert [b.tolist() for b in blocks] == [[4, 5], [6, 7], [8]]
    # appending an item changes only the newest block
    longer = segment_history(np.arange(10), cfg)
    assert [b.tolist() for b in longer] == [[4, 5], [6, 7], [8, 9]]


def test_default_keeps_at_most_25_items_in_5_blocks():
    blocks = segment_history(np.arange(100))
    assert len(blocks) == 5 and all(len(b) == 5 for b in blocks)
    assert blocks[-1].tolist() == [95, 96, 97, 98, 99]
    assert segment_history([]) == []


@pytest.mark.parametrize("kwargs", [{"block_size": 0}, {"max_blocks": -1}, {"item_tokens": 2}, {"block_size": 2.5}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="SegmentConfig"):
        SegmentConfig(**kwargs)


def test_clean_item_text_strips_html_and_space():
    assert clean_item_text("<p>Hello &amp;\n  world</p>") == "Hello & world"
    assert clean_item_text(None) == "" and clean_item_text(float("nan")) == ""


def test_render_fits_budget_and_keeps_short_texts(tokenizer):
    long = "A magazine about " + " ".join(f"topic{i}" for i in range(200))
    texts = ["Toy Story (1995)", long, "<b>Bold</b> title"]
    out = render_item_texts(texts, tokenizer, max_tokens=12)
    assert out[0] == "Toy Story (1995)" and out[2] == "Bold title"
    assert out[1].startswith("A magazine about") and out[1].endswith("...")
    for text in out:
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 12


def test_render_cuts_at_a_word_boundary(tokenizer):
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"
    out = render_item_texts([text], tokenizer, max_tokens=8)[0]
    body = out.removesuffix(" ...")
    assert text.startswith(body) and text[len(body)] == " "
