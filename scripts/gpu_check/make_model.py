#!/usr/bin/env python3
"""Write a random-weight Hugging Face checkpoint (config.json + model.safetensors) of a given
shape, for scripts/gpu_check.sh: the shapes a GPU check needs (Mistral-7B, GPT-2-small, a
Llama-1B) without downloading a model. numpy only.

  make_model.py --family mistral|llama|gpt2 --out DIR --layers L --d-model D --heads H
                [--kv-heads K] [--d-mlp F] [--vocab V] [--window W] [--positions P]
                [--dtype bf16|f32] [--tied] [--seed S]

Matrices and embeddings are N(0, 0.02) draws (a pool of 2^22 draws, each tensor a run of
the pool from a random offset: a 7B checkpoint is written at disk speed), norms are ones,
biases zeros. Prints the parameter count and the bytes written."""
import argparse
import json
import os
import struct
import sys

import numpy as np

POOL = 1 << 22


def bf16_bits(x):
    """float32 array -> bfloat16 bit patterns (round to nearest even), uint16."""
    u = x.astype(np.float32).view(np.uint32)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def tensors(a):
    """[(name, shape, init)] in the family's Hugging Face names; init: rand, ones, zeros."""
    L, D, H = a.layers, a.d_model, a.heads
    K = a.kv_heads or H
    F = a.d_mlp or 4 * D
    dh = D // H
    t = []
    if a.family == "gpt2":
        t += [("transformer.wte.weight", (a.vocab, D), "rand"),
              ("transformer.wpe.weight", (a.positions, D), "rand")]
        for i in range(L):
            p = f"transformer.h.{i}."
            t += [(p + "ln_1.weight", (D,), "ones"), (p + "ln_1.bias", (D,), "zeros"),
                  (p + "attn.c_attn.weight", (D, 3 * D), "rand"),
                  (p + "attn.c_attn.bias", (3 * D,), "zeros"),
                  (p + "attn.c_proj.weight", (D, D), "rand"),
                  (p + "attn.c_proj.bias", (D,), "zeros"),
                  (p + "ln_2.weight", (D,), "ones"), (p + "ln_2.bias", (D,), "zeros"),
                  (p + "mlp.c_fc.weight", (D, F), "rand"), (p + "mlp.c_fc.bias", (F,), "zeros"),
                  (p + "mlp.c_proj.weight", (F, D), "rand"),
                  (p + "mlp.c_proj.bias", (D,), "zeros")]
        t += [("transformer.ln_f.weight", (D,), "ones"), ("transformer.ln_f.bias", (D,), "zeros")]
        return t
    t.append(("model.embed_tokens.weight", (a.vocab, D), "rand"))
    for i in range(L):
        p = f"model.layers.{i}."
        t += [(p + "input_layernorm.weight", (D,), "ones"),
              (p + "self_attn.q_proj.weight", (H * dh, D), "rand"),
              (p + "self_attn.k_proj.weight", (K * dh, D), "rand"),
              (p + "self_attn.v_proj.weight", (K * dh, D), "rand"),
              (p + "self_attn.o_proj.weight", (D, H * dh), "rand"),
              (p + "post_attention_layernorm.weight", (D,), "ones"),
              (p + "mlp.gate_proj.weight", (F, D), "rand"),
              (p + "mlp.up_proj.weight", (F, D), "rand"),
              (p + "mlp.down_proj.weight", (D, F), "rand")]
    t.append(("model.norm.weight", (D,), "ones"))
    if not a.tied:
        t.append(("lm_head.weight", (a.vocab, D), "rand"))
    return t


def config(a):
    L, D, H = a.layers, a.d_model, a.heads
    K = a.kv_heads or H
    F = a.d_mlp or 4 * D
    dtype = "bfloat16" if a.dtype == "bf16" else "float32"
    if a.family == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": D,
                "n_head": H, "n_layer": L, "n_inner": F, "n_positions": a.positions,
                "vocab_size": a.vocab, "activation_function": "gelu_new",
                "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "torch_dtype": dtype}
    c = {"architectures": ["MistralForCausalLM" if a.family == "mistral" else "LlamaForCausalLM"],
         "model_type": a.family, "hidden_size": D, "intermediate_size": F,
         "num_attention_heads": H, "num_key_value_heads": K, "head_dim": D // H,
         "num_hidden_layers": L, "vocab_size": a.vocab, "max_position_embeddings": a.positions,
         "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": bool(a.tied),
         "torch_dtype": dtype}
    if a.family == "mistral":
        c.update(rope_theta=10000.0, sliding_window=a.window or None)
    else:
        c.update(rope_theta=500000.0, attention_bias=False, mlp_bias=False)
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=["mistral", "llama", "gpt2"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--d-model", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--kv-heads", type=int, default=0)
    ap.add_argument("--d-mlp", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--positions", type=int, default=32768)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.d_model % a.heads:
        sys.exit(f"make_model.py: --d-model {a.d_model} is not a multiple of --heads {a.heads}")
    rng = np.random.default_rng(a.seed)
    pool = (rng.standard_normal(POOL, dtype=np.float32) * np.float32(0.02))
    esize = 2 if a.dtype == "bf16" else 4
    pool = bf16_bits(pool) if a.dtype == "bf16" else pool
    one = bf16_bits(np.ones(1, np.float32)) if a.dtype == "bf16" else np.ones(1, np.float32)
    ts = tensors(a)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in ts:
        n = int(np.prod(shape)) * esize
        header[name] = {"dtype": "BF16" if a.dtype == "bf16" else "F32", "shape": list(shape),
                        "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(a), f, indent=1)
    params = 0
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape, init in ts:
            n = int(np.prod(shape))
            params += n
            if init == "rand":
                start = int(rng.integers(POOL))
                left = n
                while left:
                    k = min(left, POOL - start)
                    f.write(pool[start:start + k].tobytes())
                    left -= k
                    start = 0
            else:
                block = np.resize(one if init == "ones" else np.zeros(1, pool.dtype), min(n, POOL))
                left = n
                while left:
                    k = min(left, block.size)
                    f.write(block[:k].tobytes())
                    left -= k
    print(f"make_model: {a.family} {a.layers} layers d_model {a.d_model} -> {a.out}: "
          f"{params} parameters, {off + len(h) + 8} bytes ({a.dtype})")


if __name__ == "__main__":
    main()
