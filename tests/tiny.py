"""Tiny random-init models and tokenizers for fast tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CORPUS = [
    "A user interacted with these items, oldest first:",
    "Next item:",
    "The Matrix (1999) Toy Story (1995) Star Wars (1977) Heat (1995) Casino (1995) Alien (1979)",
    "0 1 2 3 4 5 6 7 8 9 item title film movie comedy drama action",
] * 20


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>")


def tiny_model(vocab_size: int, seed: int = 0, head_dim: int = 8) -> LlamaForCausalLM:
    """2 layers, 4 heads; vLLM's CPU attention needs head_dim >= 32."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=4 * head_dim,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg).eval()


def save_tiny_backbone(folder: Path, seed: int = 0, head_dim: int = 8) -> Path:
    """A complete model folder (config, weights, tokenizer) usable as `model.name`."""
    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer), seed, head_dim)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
