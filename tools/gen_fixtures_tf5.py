#!/usr/bin/env python3
"""Fixtures for T5 models saved by transformers 5.x (CI never runs this; the outputs are committed).

transformers 5 writes every T5 config with `"tie_word_embeddings": true` (its T5 always ties the LM head
to the embedding, so no `lm_head.weight` is saved) and records whether the decoder output is scaled by
d_model^-0.5 in a new key, `"scale_decoder_outputs"`: false for a model configured untied (T5 v1.1 style),
true otherwise. A loader that reads only `tie_word_embeddings` scales the unscaled ones. This saves one
model of each kind as transformers 5 writes it and records its greedy generations:

    tests/fixtures/transformers5/{unscaled,scaled}/   config.json, generation_config.json, model.safetensors
                                                      + expected.json (greedy ids and token log-probs)

Run from the repository root:

    python -m venv /tmp/tf5-venv
    /tmp/tf5-venv/bin/pip install torch==2.9.1 transformers==5.24.0 huggingface_hub==2.4.0 safetensors numpy
    /tmp/tf5-venv/bin/python tools/gen_fixtures_tf5.py

(The committed files were made with transformers 5.24.0 and huggingface_hub 2.4.0 from PyPI over the
torch 2.15.0 of the peer-benchmark environment; the model is float32 and tiny, so any torch gives the same.)
Recorded log-probabilities are HF's float32 logits log-softmaxed in float64. Weights are HF's init with the
RMS-norm weights drawn from [0.5, 1.5) and the `</s>` row of the head scaled so that some generations stop;
the seed is searched until every greedy step has a top-2 gap above 1e-3.
"""

import json
import os
import shutil

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5LayerNorm

OUT = "tests/fixtures/transformers5"
MAX_NEW = 10
INPUTS = [[5, 17, 200, 42, 1], [99, 1], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 250, 1]]


def build(scaled, seed):
    config = T5Config(vocab_size=300, d_model=16, d_kv=6, num_heads=3, d_ff=24, num_layers=2, num_decoder_layers=2,
                      relative_attention_num_buckets=8, relative_attention_max_distance=20,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=scaled, dropout_rate=0.0,
                      initializer_factor=2.0, decoder_start_token_id=0)
    assert config.tie_word_embeddings and config.scale_decoder_outputs == scaled
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, T5LayerNorm):
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
        model.shared.weight[1].mul_(3.0)
    return model


@torch.no_grad()
def greedy(model, ids):
    x = torch.tensor([ids])
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=1,
                         max_new_tokens=MAX_NEW, output_scores=True, return_dict_in_generate=True)
    seq = out.sequences[0, 1:].tolist()
    if 1 in seq:
        seq = seq[: seq.index(1) + 1]
    scores = torch.stack(out.scores)[:, 0]
    lp = torch.log_softmax(scores.double(), -1)
    top2 = scores.topk(2, -1).values
    gap = (top2[: len(seq), 0] - top2[: len(seq), 1]).min().item()
    return {"token_ids": seq, "token_logprobs": [lp[i, t].item() for i, t in enumerate(seq)]}, gap


def main():
    torch.set_num_threads(1)
    for name, scaled in [("unscaled", False), ("scaled", True)]:
        d = os.path.join(OUT, name)
        for seed in range(100):
            shutil.rmtree(d, ignore_errors=True)
            build(scaled, seed).save_pretrained(d)
            model = T5ForConditionalGeneration.from_pretrained(d).eval()  # the model as written
            cases, gaps = [], []
            for ids in INPUTS:
                rec, gap = greedy(model, ids)
                cases.append({"input_ids": ids, "greedy": rec})
                gaps.append(gap)
            if min(gaps) > 1e-3:
                break
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        assert cfg["tie_word_embeddings"] is True and cfg["scale_decoder_outputs"] is scaled, cfg
        expected = {"transformers_version": transformers.__version__, "torch_version": torch.__version__,
                    "seed": seed, "scale_decoder_outputs": scaled, "max_new_tokens": MAX_NEW, "cases": cases}
        with open(os.path.join(d, "expected.json"), "w") as f:
            f.write(json.dumps(expected, indent=1) + "\n")
        print(name, "seed", seed, "min gap", min(gaps), [c["greedy"]["token_ids"] for c in cases])


if __name__ == "__main__":
    main()
