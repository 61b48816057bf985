#!/usr/bin/env python3
"""Generate the HF-reference fixtures that t0-rs's Rust tests compare against.

Run from the repository root (CI never runs this; the outputs are committed):

    python tools/gen_fixtures.py                # writes tests/fixtures
    python tools/gen_fixtures.py --out DIR      # writes elsewhere

Needs the pinned environment in tools/requirements-fixtures.txt (transformers 4.x: 5.x forces T5's lm_head
tied and drops the slow sentencepiece tokenizer).

What it makes (see tests/fixtures/README.md for the schema):

* ``models/<name>/``: seven tiny randomly initialised ``T5ForConditionalGeneration`` models (one of them
  ``UMT5ForConditionalGeneration``), saved the way real
  checkpoints are (``config.json``, ``generation_config.json``, ``model.safetensors``), each covering one
  variant of the architecture a T5 engine has to get right: T0-like gated-gelu untied with the real 32128
  vocabulary and tokenizer files; original-T5 relu tied with inner width != d_model and a decoder deeper than
  the encoder; gated-gelu with inner width != d_model and a shallower decoder; gated-silu tied; tied embeddings
  stored as four separate tensors; weights stored in bfloat16; umT5 (a relative-position table in every
  self-attention layer, as google/umt5-* have), with inner width != d_model and unequal depths.
  Next to each model: ``expected.json`` (HF's generate() results: greedy, greedy with min_new_tokens, beam
  search, rank-classification scores), ``expected.safetensors`` (encoder states and decoder logits) and
  ``expected_processors.json`` (greedy and beam search with logits processors at work: repetition penalties
  above and below 1, n-gram bans, minimum lengths; ``--processors`` rewrites only these files).
* ``buckets.json``: HF's own ``T5Attention._relative_position_bucket`` for relative positions -3000..=3000.

Why the weights are not just HF's random init: HF's init gives every RMS-norm weight 1.0 (a bug that ignores
the norm weights would pass) and a tied random model mostly repeats one token forever. So after
``T5ForConditionalGeneration(config)`` (with ``initializer_factor`` 2.0, 1.0 for t0-tiny), every ``T5LayerNorm`` weight is drawn
uniformly from [0.5, 1.5), and the output-embedding row of ``</s>`` (id 1) is scaled up so that some
generations stop early (exercising EOS handling and ``min_new_tokens``).

Everything is deterministic: fixed seeds, one torch thread. For each model the weight seed is searched
(``seed``, ``seed + 1``, ...) until the recorded outputs are robust and interesting:
  - every greedy step recorded has a gap > 1e-3 between the top-1 and top-2 processed logits;
  - beam search returns the same sequences when the log-probs get +-5e-4 of uniform noise (two noise draws);
  - greedy outputs vary between inputs and are not just one repeated token;
  - at least one greedy output stops with ``</s>`` after 2 to 7 tokens and at least one runs to 12 tokens;
  - at least one returned beam hypothesis ends with ``</s>``;
  - HF's float32 teacher-forced logits are within 3e-5 of a float64 run of the same model (recorded as
    ``hf_f32_vs_f64_max_abs``), so the tests' 1e-4 tolerance measures our rounding, not HF's.
Recorded log-probabilities (greedy token log-probs, choice scores) are HF's float32 logits log-softmaxed in float64.
All recorded numbers come from the model reloaded from the files written (``from_pretrained``, float32).
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    T5Config,
    T5ForConditionalGeneration,
    T5Tokenizer,
    UMT5Config,
    UMT5ForConditionalGeneration,
)
from transformers.models.t5.modeling_t5 import T5Attention, T5LayerNorm
from transformers.models.umt5.modeling_umt5 import UMT5LayerNorm

# (config class, model class) by the spec's "arch".
ARCHS = {"t5": (T5Config, T5ForConditionalGeneration), "umt5": (UMT5Config, UMT5ForConditionalGeneration)}

if int(transformers.__version__.split(".")[0]) >= 5:
    sys.exit("transformers < 5 is required (see tools/requirements-fixtures.txt)")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPIECE = os.environ.get("T5_SPIECE", "/work/shared/t5-tokenizer/spiece.model")

MAX_NEW = 12
MIN_NEW = 8
NUM_BEAMS = 4
TEACHER_T = 7
INPUT_LENS = [1, 5, 11, 23]
MARGIN_MIN = 1e-3
BEAM_NOISE = 5e-4
MAX_TRIES = 400
# HF's own float32 teacher logits must lie this close to a float64 run of the same weights, so that the 1e-4
# the Rust tests allow against the float32 reference is spent on our rounding, not HF's.
F64_BUDGET = 3e-5

COMMON = dict(
    dropout_rate=0.0,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
    initializer_factor=2.0,
)

REQUIRED_CONFIG_KEYS = [
    "vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
    "relative_attention_num_buckets", "relative_attention_max_distance", "layer_norm_epsilon",
    "feed_forward_proj", "tie_word_embeddings", "decoder_start_token_id", "eos_token_id", "pad_token_id",
]

RELU_TIED = dict(
    vocab_size=384, d_model=24, d_kv=4, num_heads=3, d_ff=40, feed_forward_proj="relu",
    num_layers=2, num_decoder_layers=3, tie_word_embeddings=True,
    relative_attention_num_buckets=8, relative_attention_max_distance=20, layer_norm_epsilon=1e-6,
)
SILU_TIED = dict(
    vocab_size=300, d_model=20, d_kv=5, num_heads=4, d_ff=36, feed_forward_proj="gated-silu",
    num_layers=2, num_decoder_layers=2, tie_word_embeddings=True,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
)

# name, config, first weight seed, seed of the random inputs, </s> row scale, storage
MODELS = [
    dict(
        name="t0-tiny",
        config=dict(
            vocab_size=32128, d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
            feed_forward_proj="gated-gelu", tie_word_embeddings=False,
            relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
        ),
        seed=1000, input_seed=11, eos_boost=2.5, storage="hf", tokenizer=True, init=1.0,
    ),
    dict(name="relu-tied-deepdec", config=RELU_TIED,
         seed=2000, input_seed=12, eos_boost=2.0, storage="hf"),
    dict(
        name="gated-gelu-inner",
        config=dict(
            vocab_size=512, d_model=16, d_kv=12, num_heads=2, d_ff=24, feed_forward_proj="gated-gelu",
            num_layers=3, num_decoder_layers=1, tie_word_embeddings=False,
            relative_attention_num_buckets=16, relative_attention_max_distance=32, layer_norm_epsilon=1e-5,
        ),
        seed=3000, input_seed=13, eos_boost=2.0, storage="hf",
    ),
    dict(name="gated-silu-tied", config=SILU_TIED,
         seed=4000, input_seed=14, eos_boost=2.0, storage="hf"),
    dict(name="tied-stored-thrice", config=dict(RELU_TIED, num_decoder_layers=2),
         seed=5000, input_seed=15, eos_boost=2.0, storage="thrice"),
    dict(name="bf16-stored", config=SILU_TIED,
         seed=6000, input_seed=16, eos_boost=2.0, storage="bf16"),
    dict(
        name="umt5-tiny", arch="umt5",
        config=dict(
            vocab_size=320, d_model=24, d_kv=6, num_heads=3, d_ff=40, feed_forward_proj="gated-gelu",
            num_layers=3, num_decoder_layers=2, tie_word_embeddings=False,
            relative_attention_num_buckets=16, relative_attention_max_distance=40, layer_norm_epsilon=1e-6,
        ),
        seed=7000, input_seed=17, eos_boost=2.0, storage="hf", init=1.0,
    ),
]

# t0-tiny: real prompts (ids from the slow sentencepiece tokenizer) and worded answer choices.
T0_PROMPTS = [
    ("Yes", ["yes", "no", "maybe"]),
    ("Question: What is the capital of France? Answer:", ["Paris", "London", "Berlin"]),
    ("Is this review positive or negative? Review: this is the best cast iron skillet you will ever buy",
     ["Positive", "Negative", "Neutral"]),
    ("Suppose it rains all week. Can we infer that people will stay inside more often? Yes, no, or maybe?",
     ["Yes", "No", "Maybe"]),
]

BUCKET_CASES = [(True, 32, 128), (False, 32, 128), (True, 8, 20), (False, 8, 20), (True, 16, 32), (False, 16, 32)]
BUCKET_MIN, BUCKET_MAX = -3000, 3000


# ----------------------------------------------------------------------------------------------------------
# JSON: compact arrays of scalars, one key per line otherwise; floats as Python repr (exact round trip).


def to_json(obj, ind=0):
    pad = "  "
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [pad * (ind + 1) + json.dumps(k) + ": " + to_json(v, ind + 1) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad * ind + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in obj):
            return "[" + ", ".join(to_json(x) for x in obj) + "]"
        items = [pad * (ind + 1) + to_json(v, ind + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad * ind + "]"
    if isinstance(obj, float):
        assert math.isfinite(obj), obj
        return repr(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return json.dumps(obj)
    raise TypeError(type(obj))


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_json(obj) + "\n")


def f32(x):
    """A float32 scalar as the Python float holding exactly the same value."""
    return float(np.float32(x))


# ----------------------------------------------------------------------------------------------------------


class Noise(LogitsProcessor):
    """Adds uniform noise in [-amp, amp): used only to check that recorded beam results are not knife-edge."""

    def __init__(self, seed, amp):
        self.g = torch.Generator().manual_seed(seed)
        self.amp = amp

    def __call__(self, input_ids, scores):
        return scores + (torch.rand(scores.shape, generator=self.g) * 2 - 1) * self.amp


def trim(gen):
    """Generated ids after the start token, cut after the first </s>; without </s> it must be MAX_NEW long."""
    gen = list(gen)
    if 1 in gen:
        return gen[: gen.index(1) + 1]
    assert len(gen) == MAX_NEW, gen
    return gen


def shape_weights(model, seed, eos_boost):
    g = torch.Generator().manual_seed(seed * 7 + 3)
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, (T5LayerNorm, UMT5LayerNorm)):
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
        head = model.shared.weight if model.config.tie_word_embeddings else model.lm_head.weight
        head[1].mul_(eos_boost)


def fix_config_json(path, config):
    """HF writes only non-default keys (e.g. no tie_word_embeddings when true): write every required key."""
    with open(path) as f:
        cfg = json.load(f)
    for k in REQUIRED_CONFIG_KEYS:
        cfg[k] = getattr(config, k)
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def save_model(model, spec, d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    if spec["storage"] == "bf16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(d, safe_serialization=True)
    fix_config_json(os.path.join(d, "config.json"), model.config)
    path = os.path.join(d, "model.safetensors")
    if spec["storage"] == "thrice":
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        for k in ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"]:
            sd[k] = model.shared.weight.detach().clone().contiguous()
        os.remove(path)
        save_file(sd, path, metadata={"format": "pt"})
    if spec.get("tokenizer"):
        tok = T5Tokenizer(vocab_file=SPIECE, legacy=True)
        tok.save_pretrained(d)
        # Like bigscience/T0_3B: spiece.model + tokenizer_config.json + special_tokens_map.json only.
        for extra in ["added_tokens.json", "tokenizer.json"]:
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))


def load_model(d):
    arch = json.load(open(os.path.join(d, "config.json")))["model_type"]
    model = ARCHS[arch][1].from_pretrained(d).float().eval()
    return model


def make_inputs(spec):
    """Input ids, teacher decoder ids and answer choices per case (fixed per model, independent of the weights)."""
    vocab = spec["config"]["vocab_size"]
    hi = min(vocab, 32100)
    rng = np.random.default_rng(spec["input_seed"])
    cases = []
    if spec.get("tokenizer"):
        tok = T5Tokenizer(vocab_file=SPIECE, legacy=True)
        for text, words in T0_PROMPTS:
            ids = tok(text).input_ids
            choices = [tok(w).input_ids for w in words]
            teacher = [0] + rng.integers(2, hi, size=TEACHER_T - 1).tolist()
            cases.append(dict(input_ids=ids, teacher=teacher, choices=choices))
    else:
        for n in INPUT_LENS:
            ids = rng.integers(2, hi, size=n - 1).tolist() + [1]
            teacher = [0] + rng.integers(2, hi, size=TEACHER_T - 1).tolist()
            choices = []
            for _ in range(3):
                k = int(rng.integers(1, 5))
                choices.append(rng.integers(2, hi, size=k).tolist() + [1])
            cases.append(dict(input_ids=ids, teacher=teacher, choices=choices))
    for c in cases:
        assert all(isinstance(x, int) for x in c["input_ids"]) and c["input_ids"][-1] == 1
        assert all(ch[-1] == 1 for ch in c["choices"])
    return cases


# ----------------------------------------------------------------------------------------------------------


def gen_kwargs(config):
    # transformers 4.57 crashes in generate (IndexError in the cache) when the decoder has more layers than
    # the encoder, unless the KV cache is off.
    return {"use_cache": False} if config.num_decoder_layers > config.num_layers else {}


def run_greedy(model, ids, min_new, kw):
    x = torch.tensor([ids])
    out = model.generate(
        input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=1,
        max_new_tokens=MAX_NEW, min_new_tokens=min_new, output_scores=True, return_dict_in_generate=True, **kw,
    )
    seq = out.sequences[0].tolist()
    assert seq[0] == 0
    toks = trim(seq[1:])
    assert len(toks) == len(seq) - 1 == len(out.scores)
    scores = torch.stack(out.scores)[:, 0].float()
    # log-softmax in float64 of HF's float32 scores: a float32 log-sum-exp over 32128 near-uniform logits
    # is itself only good to ~2e-5.
    lp = torch.log_softmax(scores.double(), dim=-1)
    token_lp = [lp[i, t].item() for i, t in enumerate(toks)]
    ref = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
    assert torch.allclose(ref.double(), torch.tensor(token_lp, dtype=torch.float64), atol=1e-4), ref
    top2 = scores.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    assert all(scores[i].argmax().item() == t for i, t in enumerate(toks))
    rec = {"max_new_tokens": MAX_NEW, "min_new_tokens": min_new, "token_ids": toks,
           "token_logprobs": [f32(v) for v in token_lp]}
    return rec, margin


def run_beam(model, ids, nret, kw, noise_seed=None):
    x = torch.tensor([ids])
    extra = {}
    if noise_seed is not None:
        extra["logits_processor"] = LogitsProcessorList([Noise(noise_seed, BEAM_NOISE)])
    out = model.generate(
        input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=NUM_BEAMS,
        num_return_sequences=nret, max_new_tokens=MAX_NEW, output_scores=True, return_dict_in_generate=True,
        **kw, **extra,
    )
    seqs = [trim(s[1:]) for s in out.sequences.tolist()]
    assert all(s[0] == 0 for s in out.sequences.tolist())
    return seqs, [f32(v) for v in out.sequences_scores.tolist()]


@torch.no_grad()
def forward_records(model, case, vocab):
    ids = torch.tensor([case["input_ids"]])
    mask = torch.ones_like(ids)
    enc = model.encoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    first = model(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.tensor([[0]]), use_cache=False).logits
    teacher = model(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.tensor([case["teacher"]]),
                    use_cache=False).logits
    assert first.shape == (1, 1, vocab) and teacher.shape == (1, TEACHER_T, vocab)
    scores, normed = [], []
    for ch in case["choices"]:
        dec = torch.tensor([[0] + ch[:-1]])
        lg = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, use_cache=False).logits[0].float()
        lp = torch.log_softmax(lg.double(), dim=-1)
        s = float(sum(float(lp[t, c]) for t, c in enumerate(ch)))
        scores.append(f32(s))
        normed.append(f32(s / len(ch)))
    tensors = {
        "encoder_hidden": enc[0].float().contiguous(),
        "first_logits": first[0, 0].float().contiguous(),
        "teacher_logits": teacher[0].float().contiguous(),
    }
    choices = {"choices": case["choices"], "scores": scores, "length_normalized": normed}
    return tensors, choices


@torch.no_grad()
def batch_records(model, cases):
    smax = max(len(c["input_ids"]) for c in cases)
    ids = [c["input_ids"] + [0] * (smax - len(c["input_ids"])) for c in cases]
    mask = [[1] * len(c["input_ids"]) + [0] * (smax - len(c["input_ids"])) for c in cases]
    x, m = torch.tensor(ids), torch.tensor(mask)
    enc = model.encoder(input_ids=x, attention_mask=m, use_cache=False).last_hidden_state
    first = model(input_ids=x, attention_mask=m, decoder_input_ids=torch.zeros((len(cases), 1), dtype=torch.long),
                  use_cache=False).logits
    assert torch.isfinite(enc).all() and torch.isfinite(first).all()
    return {"input_ids": ids, "attention_mask": mask}, {
        "batch.encoder_hidden": enc.float().contiguous(),
        "batch.first_logits": first[:, 0].float().contiguous(),
    }


@torch.no_grad()
def f64_teacher_diff(model, out_cases, tensors):
    """Largest |float32 - float64| over every case's teacher-forced logits (HF's own rounding error)."""
    m64 = copy.deepcopy(model).double()
    worst = 0.0
    for i, c in enumerate(out_cases):
        ids = torch.tensor([c["input_ids"]])
        dec = torch.tensor([c["teacher"]["decoder_input_ids"]])
        want = m64(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=dec, use_cache=False).logits[0]
        worst = max(worst, (tensors[f"case{i}.teacher_logits"].double() - want).abs().max().item())
    return worst


def record(model, spec, cases):
    """All recorded outputs of one model, plus the robustness statistics used to accept its seed."""
    kw = gen_kwargs(model.config)
    vocab = model.config.vocab_size
    out_cases, tensors, margins, problems = [], {}, [], []
    for i, case in enumerate(cases):
        ids = case["input_ids"]
        greedy, m0 = run_greedy(model, ids, 0, kw)
        greedy_min, m1 = run_greedy(model, ids, MIN_NEW, kw)
        margins += [m0, m1]
        b1, s1 = run_beam(model, ids, 1, kw)
        b2, s2 = run_beam(model, ids, 2, kw)
        assert b1[0] == b2[0] and abs(s1[0] - s2[0]) < 1e-6, (b1, b2, s1, s2)
        for ns in (1, 2):
            if run_beam(model, ids, 2, kw, noise_seed=1000 * i + ns)[0] != b2:
                problems.append(f"case {i}: beam result changes under noise")
        if len(b2) == 2 and b2[0] == b2[1]:
            problems.append(f"case {i}: beams identical")
        t, choices = forward_records(model, case, vocab)
        for k, v in t.items():
            tensors[f"case{i}.{k}"] = v
        out_cases.append({
            "input_ids": ids,
            "greedy": greedy,
            "greedy_min": greedy_min,
            "beam4": {"num_beams": NUM_BEAMS, "max_new_tokens": MAX_NEW, "token_ids": b1[0], "sequence_score": s1[0]},
            "beam4_ret2": {"num_beams": NUM_BEAMS, "num_return_sequences": 2, "max_new_tokens": MAX_NEW,
                           "token_ids": b2, "sequence_scores": s2},
            "teacher": {"decoder_input_ids": case["teacher"]},
            "choices": choices,
        })
    batch, bt = batch_records(model, cases)
    tensors.update(bt)
    f64_diff = f64_teacher_diff(model, out_cases, tensors)
    if f64_diff > F64_BUDGET:
        problems.append(f"HF float32 is {f64_diff:.1e} from float64")

    greedy_outs = [c["greedy"]["token_ids"] for c in out_cases]
    min_margin = min(margins)
    if min_margin <= MARGIN_MIN:
        problems.append(f"greedy margin {min_margin:.2e}")
    if len({tuple(g) for g in greedy_outs}) < len(greedy_outs):
        problems.append("two inputs give the same greedy output")
    if not any(len(set(g) - {1}) >= 3 for g in greedy_outs):
        problems.append("greedy outputs are repetitive")
    if not any(g[-1] == 1 and 2 <= len(g) < MIN_NEW for g in greedy_outs):
        problems.append("no greedy output stops early")
    if not any(g[-1] != 1 for g in greedy_outs):
        problems.append("every greedy output stops")
    if not any(t[-1] == 1 for c in out_cases for t in c["beam4_ret2"]["token_ids"]):
        problems.append("no beam hypothesis ends with </s>")
    expected = {
        "model": spec["name"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "hf_f32_vs_f64_max_abs": f64_diff,
        "cases": out_cases,
        "batch": batch,
    }
    return expected, tensors, min_margin, problems


def build(spec, seed):
    common = dict(COMMON, initializer_factor=spec.get("init", COMMON["initializer_factor"]))
    config_class, model_class = ARCHS[spec.get("arch", "t5")]
    config = config_class(**common, **spec["config"])
    torch.manual_seed(seed)
    model = model_class(config).eval()
    shape_weights(model, seed, spec["eos_boost"])
    return model


def check_saved(spec, d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    for k in REQUIRED_CONFIG_KEYS:
        assert k in cfg, (spec["name"], k)
        want = COMMON.get(k, spec["config"].get(k))
        assert cfg[k] == want, (spec["name"], k, cfg[k], want)
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        t = {k: f.get_tensor(k) for k in keys}
    want_dtype = torch.bfloat16 if spec["storage"] == "bf16" else torch.float32
    assert all(v.dtype == want_dtype for v in t.values()), spec["name"]
    if spec["storage"] == "bf16":
        assert cfg.get("dtype", cfg.get("torch_dtype")) == "bfloat16", cfg
    if not spec["config"]["tie_word_embeddings"]:
        assert cfg["tie_word_embeddings"] is False
        assert "lm_head.weight" in keys and not torch.equal(t["lm_head.weight"], t["shared.weight"])
    if spec["storage"] == "thrice":
        names = ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"]
        assert all(n in keys for n in names)
        assert all(torch.equal(t[n], t["shared.weight"]) for n in names)
    if spec.get("tokenizer"):
        assert not os.path.exists(os.path.join(d, "tokenizer.json"))
        assert os.path.exists(os.path.join(d, "spiece.model"))
    return sorted(keys)


def verify(spec, d, expected):
    """Reload from disk in a fresh model and re-run one case."""
    model = load_model(d)
    kw = gen_kwargs(model.config)
    c = expected["cases"][-1]
    g, _ = run_greedy(model, c["input_ids"], 0, kw)
    assert g["token_ids"] == c["greedy"]["token_ids"], spec["name"]
    with safe_open(os.path.join(d, "expected.safetensors"), "pt") as f:
        want = f.get_tensor(f"case{len(expected['cases']) - 1}.teacher_logits")
    with torch.no_grad():
        got = model(input_ids=torch.tensor([c["input_ids"]]),
                    decoder_input_ids=torch.tensor([c["teacher"]["decoder_input_ids"]]), use_cache=False).logits[0]
    diff = (got - want).abs().max().item()
    assert diff < 1e-5, (spec["name"], diff)
    return diff


def make_model(spec, out_dir):
    d = os.path.join(out_dir, "models", spec["name"])
    cases = make_inputs(spec)
    for k in range(MAX_TRIES):
        seed = spec["seed"] + k
        save_model(build(spec, seed), spec, d)
        model = load_model(d)
        expected, tensors, margin, problems = record(model, spec, cases)
        if not problems:
            break
        print(f"  {spec['name']} seed {seed}: rejected ({'; '.join(problems)})", flush=True)
    else:
        raise SystemExit(f"{spec['name']}: no acceptable seed in {MAX_TRIES} tries")
    keys = check_saved(spec, d)
    write_json(os.path.join(d, "expected.json"), expected)
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    diff = verify(spec, d, expected)
    g = [c["greedy"]["token_ids"] for c in expected["cases"]]
    print(f"{spec['name']}: seed {seed}, min greedy margin {margin:.4g}, reload diff {diff:.1e}, "
          f"{len(keys)} tensors, greedy {g}", flush=True)
    return dict(name=spec["name"], seed=seed, margin=margin)


# Logits processors recorded per model (expected_processors.json), each with greedy and beam search, the
# beams also with a length penalty and stopping rule: HF's generate() options. A setting is kept for a model
# only where its recorded results are robust (greedy margins and beams under noise, as for the plain runs).
PROCESSOR_SETTINGS = [
    ({"repetition_penalty": 1.3, "no_repeat_ngram_size": 2}, {"length_penalty": 0.0, "early_stopping": True}),
    ({"repetition_penalty": 0.8, "min_new_tokens": 4}, {"length_penalty": 2.0, "early_stopping": "never"}),
    ({"repetition_penalty": 2.0, "no_repeat_ngram_size": 3, "min_new_tokens": 2}, {"length_penalty": -1.0}),
    ({"no_repeat_ngram_size": 2}, {"length_penalty": 0.5, "early_stopping": "never"}),
    # Stopping rules alone (where they change HF's beams: at least one model each, checked below).
    ({}, {"length_penalty": 2.0, "early_stopping": True}),
    ({}, {"length_penalty": 1.0, "early_stopping": "never"}),
    ({}, {"length_penalty": 2.0, "early_stopping": "never"}),
]


def make_processor_records(spec, out_dir):
    """Greedy and beam search (4 beams, 2 returned) with the logits processors of PROCESSOR_SETTINGS on
    the inputs of the model's expected.json, from the model files as written: expected_processors.json.
    Adds a file and changes none, so it can run on committed fixtures (`--processors`)."""
    d = os.path.join(out_dir, "models", spec["name"])
    model = load_model(d)
    kw = gen_kwargs(model.config)
    with open(os.path.join(d, "expected.json")) as f:
        plain = json.load(f)["cases"]
    runs, changed, rules = [], 0, set()
    for k, (setting, beam_opts) in enumerate(PROCESSOR_SETTINGS):
        opts = {key: v for key, v in setting.items() if key != "min_new_tokens"}
        min_new = setting.get("min_new_tokens", 0)
        cases, problems = [], []
        for i, case in enumerate(plain):
            ids = case["input_ids"]
            greedy, margin = run_greedy(model, ids, min_new, {**kw, **opts})
            if margin <= MARGIN_MIN:
                problems.append(f"case {i}: greedy margin {margin:.2e}")
            beams, scores = run_beam(model, ids, 2, {**kw, **setting, **beam_opts})
            for ns in (1, 2):
                noisy = run_beam(model, ids, 2, {**kw, **setting, **beam_opts}, noise_seed=100000 + 1000 * k + 10 * i + ns)
                if noisy[0] != beams:
                    problems.append(f"case {i}: beam result changes under noise")
            changed += greedy["token_ids"] != case["greedy"]["token_ids"]
            # Whether the stopping rule changes the beams here (HF's default rule instead).
            es = beam_opts.get("early_stopping", False)
            if es is not False and run_beam(model, ids, 2, {**kw, **setting, **beam_opts, "early_stopping": False}) != (
                    beams, scores):
                rules.add(str(es))
            cases.append({"input_ids": ids, "greedy": greedy,
                          "beam": {"num_beams": NUM_BEAMS, "num_return_sequences": 2, "max_new_tokens": MAX_NEW,
                                   **beam_opts, "token_ids": beams, "sequence_scores": scores}})
        if problems:
            print(f"  {spec['name']} processors {setting} {beam_opts}: not recorded ({'; '.join(problems)})", flush=True)
            continue
        runs.append({"processors": setting, "beam_options": beam_opts, "cases": cases})
    if not runs or not changed:
        raise SystemExit(f"{spec['name']}: no robust processor setting that changes a greedy output")
    write_json(os.path.join(d, "expected_processors.json"), {
        "model": spec["name"], "transformers_version": transformers.__version__,
        "torch_version": torch.__version__, "runs": runs,
    })
    print(f"{spec['name']}: {len(runs)} processor settings recorded, {changed} greedy outputs changed by them, "
          f"beams changed by early_stopping = {sorted(rules) or 'none'}", flush=True)
    return rules


LOGITS_PROCESS_CASES = 100
LOGITS_PROCESS_VOCAB = 32


def make_logits_process_cases(out_dir):
    """logits_process.json: rows of logits through the processors and warpers HF's generate() builds
    for a sampling config (`_get_logits_processor`, in its order), on random settings and decoder inputs;
    the -inf entries written as null."""
    import random
    from transformers import GenerationConfig
    rng = random.Random(21)
    g = torch.Generator().manual_seed(21)
    model = load_model(os.path.join(out_dir, "models", "gated-gelu-inner"))
    v = LOGITS_PROCESS_VOCAB
    cases = []
    for i in range(LOGITS_PROCESS_CASES):
        row = torch.randn(v, generator=g) * 3
        if i % 2 == 0:
            row = (row * 2).round() / 2  # a coarse grid: ties everywhere
        if i % 5 == 0:
            row[rng.randrange(v)] = -math.inf
        if i % 17 == 0:
            row[:] = 1.5  # every value equal
        seq = [0] + [rng.randrange(12) for _ in range(rng.randrange(0, 10))]
        cfg = {"temperature": rng.choice([1.0, 0.7, 1.5]), "top_k": rng.choice([0, 1, 5, 50]),
               "top_p": rng.choice([1.0, 0.9, 0.5, 0.1]), "repetition_penalty": rng.choice([1.0, 1.3, 0.8]),
               "no_repeat_ngram_size": rng.choice([0, 2, 3]), "min_new_tokens": rng.choice([0, 4])}
        gc = GenerationConfig(do_sample=True, eos_token_id=1, pad_token_id=0, decoder_start_token_id=0, **cfg)
        model._prepare_special_tokens(gc, True, device="cpu")  # as generate() does: the eos tensor
        procs = model._get_logits_processor(gc, input_ids_seq_length=1, encoder_input_ids=torch.tensor([[5, 1]]),
                                            device="cpu", model_kwargs={})
        out = procs(torch.tensor([seq]), row.clone()[None])[0]
        enc = lambda t: [None if math.isinf(x) and x < 0 else f32(x) for x in t.tolist()]
        cases.append({"config": cfg, "decoder_input_ids": seq, "logits": enc(row), "processed": enc(out),
                      "hf_processors": [type(p).__name__ for p in procs]})
    write_json(os.path.join(out_dir, "logits_process.json"), {
        "transformers_version": transformers.__version__, "torch_version": torch.__version__, "eos_token_id": 1,
        "cases": cases,
    })


def make_buckets(out_dir):
    rel = torch.arange(BUCKET_MIN, BUCKET_MAX + 1, dtype=torch.long)
    cases = []
    for bidir, n, m in BUCKET_CASES:
        b = T5Attention._relative_position_bucket(rel, bidirectional=bidir, num_buckets=n, max_distance=m)
        cases.append({"bidirectional": bidir, "num_buckets": n, "max_distance": m, "min_relative": BUCKET_MIN,
                      "buckets": [int(v) for v in b.tolist()]})
    write_json(os.path.join(out_dir, "buckets.json"), {"cases": cases})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", help="model names to (re)generate (default: all)")
    ap.add_argument("--processors", action="store_true",
                    help="only (re)write the logits-processor fixtures (each model's expected_processors.json, "
                    "logits_process.json) from the model files already there")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    os.makedirs(os.path.join(args.out, "models"), exist_ok=True)
    if args.processors:
        rules = set()
        for spec in MODELS:
            if not args.only or spec["name"] in args.only:
                rules |= make_processor_records(spec, args.out)
        if not args.only and rules != {"True", "never"}:
            raise SystemExit(f"the recorded beams tell early_stopping apart from false only for {sorted(rules)}")
        make_logits_process_cases(args.out)
        return
    make_buckets(args.out)
    summary = []
    for spec in MODELS:
        if args.only and spec["name"] not in args.only:
            continue
        summary.append(make_model(spec, args.out))
        make_processor_records(spec, args.out)
    if not args.only or "gated-gelu-inner" in args.only:
        make_logits_process_cases(args.out)
    print("transformers", transformers.__version__, "torch", torch.__version__)
    for s in summary:
        print(f"  {s['name']:20s} seed {s['seed']:5d}  min greedy margin {s['margin']:.4g}")


if __name__ == "__main__":
    main()
