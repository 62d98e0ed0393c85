import pytest
import torch

from soundsmith.errors import TextError
from soundsmith.text import MAX_PROMPT_CHARS, TextEmbedding, check_prompts
from soundsmith.text.base import masked_mean_normalized


def test_check_prompts_accepts_lists_and_tuples():
    assert check_prompts(("a dog barks", "rain")) == ["a dog barks", "rain"]
    assert check_prompts(["x" * MAX_PROMPT_CHARS]) == ["x" * MAX_PROMPT_CHARS]


@pytest.mark.parametrize(
    "texts, fragment",
    [
        ("a dog barks", "wrap it in a list"),
        ([], "empty list"),
        (None, "list of prompts"),
        (["ok", None], "prompt 1 is a NoneType"),
        (["ok", b"bytes"], "prompt 1 is a bytes"),
        ([3], "prompt 0 is a int"),
        (["ok", "fine", "", "x"], "prompt 2 is empty"),
        (["ok", "fine", "more", " \t\n"], "prompt 3 is empty"),
        (["x" * (MAX_PROMPT_CHARS + 1)], f"limit of {MAX_PROMPT_CHARS}"),
    ],
)
def test_check_prompts_rejects_bad_input(texts, fragment):
    with pytest.raises(TextError, match=fragment):
        check_prompts(texts)


def test_masked_mean_normalized_ignores_padding():
    tokens = torch.tensor([[[3.0, 0.0], [0.0, 4.0], [100.0, 100.0]]])  # [1, 3, 2]
    mask = torch.tensor([[True, True, False]])
    pooled = masked_mean_normalized(tokens, mask)
    assert torch.allclose(pooled, torch.tensor([[0.6, 0.8]]))


def test_text_embedding_counts_truncated_and_moves():
    emb = TextEmbedding(
        torch.zeros(3, 2, 4), torch.ones(3, 2, dtype=torch.bool), torch.zeros(3, 4), [True, False, True]
    )
    assert emb.num_truncated == 2
    assert len(emb) == 3
    moved = emb.to("cpu")
    assert moved.truncated == [True, False, True] and moved.tokens.shape == (3, 2, 4)
