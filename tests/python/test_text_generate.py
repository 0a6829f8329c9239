"""to_tokens / to_string / to_str_tokens, generate and embed: the C library's through the CLI."""
import numpy as np
import pytest
from conftest import FIX, PROMPT, cli, ids_arg

import hookformer as hf


def test_tokens_equal_hookformer_tokenize(bert_body):
    text = "Tokenizers: naive cafe, hello world!"
    ids = [int(i) for i in cli("tokenize", "--model", FIX / "bert_body", "--prompt", text,
                               "--ids").split(",")]
    toks = bert_body.to_tokens(text)
    assert toks.dtype == np.int64 and toks.tolist() == [ids]
    assert bert_body.to_string(toks[0]) == "[CLS] tokenizers : naive cafe, hello world! [SEP]"
    assert bert_body.to_string(toks) == [bert_body.to_string(toks[0])]
    strs = bert_body.to_str_tokens(text)
    assert len(strs) == len(ids) and strs[0] == "[CLS]" and strs[-1] == "[SEP]"
    assert bert_body.to_str_tokens(toks) == strs


def test_a_model_without_tokenizer_says_so(gpt2):
    with pytest.raises(hf.HookformerError, match="no tokenizer"):
        gpt2.to_tokens("hello")
    with pytest.raises(hf.HookformerError, match="no tokenizer"):
        gpt2("hello")


def test_generate_greedy_equals_the_cli(gpt2):
    want = [int(i) for i in cli("generate", "--model", FIX / "gpt2", "--tokens",
                                ids_arg(PROMPT[0]), "--max-new", "12").split(",")]
    assert want == [68, 100, 100, 276, 288, 288, 100, 281, 276, 276, 288, 288]  # the README's
    out = gpt2.generate(PROMPT, max_new_tokens=12, do_sample=False)
    assert out.shape == (1, 18) and out[0, :6].tolist() == PROMPT[0].tolist()
    assert out[0, 6:].tolist() == want


def test_generate_sampled_equals_the_cli(llama):
    tokens = "2,189,262,96,20,36"
    want = cli("generate", "--model", FIX / "llama", "--tokens", tokens, "--max-new", "12",
               "--temperature", "0.8", "--top-p", "0.9", "--seed", "7").strip()
    out = llama.generate([int(t) for t in tokens.split(",")], max_new_tokens=12,
                         temperature=0.8, top_p=0.9, seed=7)
    assert ids_arg(out[0, 6:]) == want


def test_generate_fires_the_models_hooks_every_step(gpt2):
    steps = []
    gpt2.add_hook("blocks.0.hook_resid_post", lambda a, h: steps.append((a.shape[1],
                                                                         h.pos_offset)))
    try:
        gpt2.generate(PROMPT, max_new_tokens=3, do_sample=False)
    finally:
        gpt2.reset_hooks()
    assert steps == [(6, 0), (1, 6), (1, 7)]  # prefill, then one position per decode step


def test_generate_text_on_smollm2(smollm2):
    out = smollm2.generate("The capital of France is", max_new_tokens=1, do_sample=False)
    assert out == "<|im_start|>The capital of France is Paris"  # BOS first, as TransformerLens
    assert smollm2.to_str_tokens("The capital of France is")[:3] == ["<|im_start|>", "The",
                                                                    " capital"]
    logits, cache = smollm2.run_with_cache("The capital of France is",
                                           names_filter="blocks.29.hook_resid_post")
    assert smollm2.to_string(logits[0, -1].argmax()) == " Paris"
    assert cache["blocks.29.hook_resid_post"].shape[-1] == 576


def test_embed_equals_hookformer_embed(bert_body, tmp_path):
    texts = ["hello world", "A man is eating food."]
    cli("embed", "--model", FIX / "bert_body", "--prompt", texts[0], "--prompt", texts[1],
        "--out", tmp_path / "e.npy")
    want = np.load(tmp_path / "e.npy")
    got = bert_body.embed(texts)
    assert got.shape == want.shape == (2, bert_body.cfg["d_model"])
    np.testing.assert_allclose(got, want, atol=1e-6)
    cls = bert_body.embed(texts, pooling="cls", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(cls, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="pooling='median'"):
        bert_body.embed(texts, pooling="median")
