#!/usr/bin/env python3
"""Check the `t0` binary against HF transformers on T5 models the repository has never seen.

The committed fixtures (tools/gen_fixtures.py) pin six shapes. This draws fresh ones: every seed makes a
random T5 config (widths, heads, inner width != d_model or not, depths, bucket counts and distances (some under the bucket count), every
feed-forward kind T5 configs use, tied or untied head, f32/bf16/f16 storage, every third model sharded, sometimes eos/decoder-start ids
other than 1/0, a fifth saved as mT5 and a fifth as umT5), random weights, random inputs (some longer than the bucket distance), then compares:

* greedy ids and token log-probs of several inputs decoded as one padded batch;
* beam search (3 beams, 2 returned) of all inputs in one call: ids and scores;
* rank-classification scores of answer choices (`t0 score`);
* with `--device host|cuda`: sampling (top-k, a temperature, top-p; with and without the processors)
  against the CPU model with the same seed;
* greedy and beam search again with logits processors at work (a repetition penalty of 1.3, 2 or 0.8,
  an n-gram size of 0, 2 or 3, a minimum length of 0 or 3, drawn per model), the beams with a length
  penalty of 1, 0, 2, -1 or 0.5 and early stopping false, true or "never": ids, log-probs, scores.

With `--texts N` it also encodes N random texts (words, punctuation, runs of spaces, tabs and newlines,
accents, CJK, emoji, NFKC-foldable characters, `<extra_id_*>`/`</s>` written in the text) with `t0 tokenize`
on T5's real spiece.model and compares the ids with `AutoTokenizer` (T5TokenizerFast, converted from it).
With `--spm-variants` it first trains small SentencePiece unigram models with the options T5's vocabulary
does not use (identity and case-folding normalisation, byte fallback, no dummy prefix, split digits,
extra whitespace kept), saves each as T0_3B ships its tokenizer (spiece.model + tokenizer_config.json +
special_tokens_map.json) and runs the same comparison on each.

Run from the repository root with the pinned environment of tools/requirements-fixtures.txt (not CI):

    cargo build --release -p t0-cli
    python tools/cross_check.py --seeds 0-19            # prints one line per model, exits 1 on a mismatch
    python tools/cross_check.py --seeds 0 --texts 300   # and 300 random texts through the tokenizer
    python tools/cross_check.py --seeds 0 --texts 300 --spm-variants   # also on six freshly trained vocabularies
    python tools/cross_check.py --seeds 0-19 --device host   # generation and scoring through DeviceModel
    python tools/cross_check.py --model /path/t0_3b-random   # one existing model, e.g. T0_3B-shaped weights

Log-probs and scores are held to 1e-4 per token, or to twice HF's own float32-vs-float64 gap on that model
(teacher-forced, printed as hf32-vs-64) where that is larger: some random models amplify rounding. A greedy
log-prob off HF's float32 by more than that passes if it is within it of HF's float64 run, or if it is
no further from that run than f32-sized noise moves it at that step (an ill-conditioned step: every
linear layer's output of the float64 model multiplied by 1 + 6e-8·N(0, 1), the largest move of 8 draws).
A differing greedy or beam id is a near-tie when HF's own top-2 gap at that step is under 1e-4: both
engines are right to within rounding there. Both are printed as rounding cases, not failures.
"""

import argparse
import copy
import json
import os
import random
import shutil
import subprocess
import sys

import torch
from transformers import (
    MT5Config,
    MT5ForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
    UMT5Config,
    UMT5ForConditionalGeneration,
)
from transformers.models.t5.modeling_t5 import T5LayerNorm
from transformers.models.umt5.modeling_umt5 import UMT5LayerNorm

MODEL_CLASSES = {"t5": T5ForConditionalGeneration, "mt5": MT5ForConditionalGeneration, "umt5": UMT5ForConditionalGeneration}

TOL = 1e-4
MAX_NEW = 10
FFN = ["relu", "gated-gelu", "gated-silu", "gated-relu", "silu", "gelu_new", "gated-gelu_new"]


def draw_config(rng):
    heads = rng.randint(1, 6)
    d_model = rng.choice([8, 12, 16, 24, 32, 40, 48, 64])
    d_kv = rng.choice([d_model // heads or 1, rng.randint(2, 16)])
    buckets = rng.randint(4, 40)  # HF divides by zero in the encoder's buckets below 4
    # Beyond the decoder's exact range (buckets // 2): at or under it HF's buckets go negative (t0 refuses).
    max_distance = rng.randint(buckets, 200) if rng.random() < 0.8 else rng.randint(buckets // 2 + 1, buckets)
    eos, start = (1, 0) if rng.random() < 0.7 else (rng.randint(2, 9), rng.choice([0, 3]))
    r = rng.random()
    kind = MT5Config if r < 0.2 else UMT5Config if r >= 0.8 else T5Config
    return kind(
        vocab_size=rng.randint(40, 700), d_model=d_model, d_kv=d_kv, num_heads=heads,
        d_ff=rng.randint(4, 100), num_layers=rng.randint(1, 4), num_decoder_layers=rng.randint(1, 4),
        relative_attention_num_buckets=buckets, relative_attention_max_distance=max_distance,
        feed_forward_proj=rng.choice(FFN), tie_word_embeddings=rng.random() < 0.5,
        layer_norm_epsilon=rng.choice([1e-6, 1e-5, 1e-3]), initializer_factor=rng.choice([1.0, 2.0]),
        dropout_rate=0.0, eos_token_id=eos, pad_token_id=0, decoder_start_token_id=start,
    )


def build(config, seed, storage, out):
    torch.manual_seed(seed)
    cls = MODEL_CLASSES[config.model_type]
    model = cls(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (T5LayerNorm, UMT5LayerNorm)):
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
        head = model.shared.weight if config.tie_word_embeddings else model.lm_head.weight
        head[config.eos_token_id].mul_(3.0)
    shutil.rmtree(out, ignore_errors=True)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[storage]
    # Every third model sharded (model.safetensors.index.json + shards), as large checkpoints are.
    shard = {"max_shard_size": "20KB"} if seed % 3 == 1 else {}
    model.to(dtype).save_pretrained(out, safe_serialization=True, **shard)
    # Reload what was written: the reference is the model as stored, computed in f32.
    return cls.from_pretrained(out).float().eval()


def trim(seq, eos):
    return seq[: seq.index(eos) + 1] if eos in seq else seq


@torch.no_grad()
def teacher_logprobs(model, x, decoder_input, targets):
    """Log-probs (float64 log-softmax of the model's logits) of `targets` after `decoder_input`."""
    logits = model(input_ids=x, attention_mask=torch.ones_like(x), decoder_input_ids=torch.tensor([decoder_input]),
                   use_cache=False).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return [lp[i, t].item() for i, t in enumerate(targets)]


def teacher_gap(model, model64, x, decoder_input, targets):
    a = teacher_logprobs(model, x, decoder_input, targets)
    b = teacher_logprobs(model64, x, decoder_input, targets)
    return max(abs(p - q) for p, q in zip(a, b))


@torch.no_grad()
def hf_generate(model, x, kw, beam_kw=None):
    """HF's greedy search and beam search (3 beams, 2 returned) of input `x` with generate()
    options `kw` (e.g. logits processors): the greedy ids, their log-probs under the processed
    distribution and the top-2 gap of each step's processed scores; the beams' ids and scores."""
    eos = model.config.eos_token_id
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=1,
                         max_new_tokens=MAX_NEW, output_scores=True, return_dict_in_generate=True, **kw)
    toks = trim(out.sequences[0, 1:].tolist(), eos)
    s = torch.stack(out.scores)[:, 0].double()
    lp = torch.log_softmax(s, -1)
    top2 = s.topk(2, -1).values
    greedy = {"ids": toks, "lp": [lp[i, t].item() for i, t in enumerate(toks)],
              "gaps": (top2[:, 0] - top2[:, 1]).tolist()}
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=3,
                         num_return_sequences=2, max_new_tokens=MAX_NEW, output_scores=True,
                         return_dict_in_generate=True, **kw, **(beam_kw or {}))
    beams = {"ids": [trim(q[1:], eos) for q in out.sequences.tolist()], "scores": out.sequences_scores.tolist()}
    return greedy, beams


def draw_processors(rng):
    """Logits processors for one model: a repetition penalty above or below 1, an n-gram size, a
    minimum length (HF's generate() names)."""
    return {"repetition_penalty": rng.choice([1.3, 2.0, 0.8]), "no_repeat_ngram_size": rng.choice([0, 2, 3]),
            "min_new_tokens": rng.choice([0, 3])}


def draw_beam_options(rng):
    """Beam search's length penalty and stopping rule for one model (HF's generate() names)."""
    return {"length_penalty": rng.choice([1.0, 0.0, 2.0, -1.0, 0.5]), "early_stopping": rng.choice([False, True, "never"])}


def beam_args(opts):
    return ["--length-penalty", str(opts["length_penalty"]), "--early-stopping", str(opts["early_stopping"]).lower()]


@torch.no_grad()
def processed_logprobs(model, x, toks, proc):
    """Teacher-forced log-probs of `toks` under the distribution HF's generate() processes with `proc`
    (its own processor list, applied step by step to the model's logits)."""
    from transformers import GenerationConfig
    cfg = model.config
    start = cfg.decoder_start_token_id
    logits = model(input_ids=x, attention_mask=torch.ones_like(x), decoder_input_ids=torch.tensor([[start] + toks[:-1]]),
                   use_cache=False).logits[0]
    gc = GenerationConfig(eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id, decoder_start_token_id=start,
                          **proc)
    model._prepare_special_tokens(gc, True, device="cpu")
    procs = model._get_logits_processor(gc, input_ids_seq_length=1, encoder_input_ids=x, device="cpu", model_kwargs={})
    out = []
    for i, t in enumerate(toks):
        s = procs(torch.tensor([[start] + toks[:i]]), logits[i:i + 1].clone())
        out.append(torch.log_softmax(s.double(), -1)[0, t].item())
    return out


@torch.no_grad()
def rounding_sensitivity(model64, logprobs, draws=8):
    """Per step, the largest change of `logprobs()` (a float64 run of `model64`) over `draws` runs with
    every linear layer's output multiplied by 1 + 6e-8·N(0, 1): noise the size of float32 rounding (one
    ulp is 6e-8 of a value), so how far rounding alone can move a float32 result at that step."""
    base = logprobs()
    gen = torch.Generator().manual_seed(0)

    def noise(module, inputs, out):
        return out * (1 + 6e-8 * torch.randn(out.shape, generator=gen, dtype=out.dtype))

    hooks = [m.register_forward_hook(noise) for m in model64.modules() if isinstance(m, torch.nn.Linear)]
    try:
        runs = [logprobs() for _ in range(draws)]
    finally:
        for h in hooks:
            h.remove()
    return [max(abs(r[i] - b) for r in runs) for i, b in enumerate(base)]


def rounding_note(cases):
    return f" ({len(cases)} rounding case{'s' if len(cases) > 1 else ''})" if cases else ""


def processor_args(proc):
    return ["--repetition-penalty", str(proc["repetition_penalty"]),
            "--no-repeat-ngram-size", str(proc["no_repeat_ngram_size"]),
            "--min-new-tokens", str(proc["min_new_tokens"])]


def hf_reference(model, inputs, choices, f64=True):
    cfg = model.config
    kw = {"use_cache": False} if cfg.num_decoder_layers > cfg.num_layers else {}
    greedy, beams, scores = [], [], []
    # How far HF's own float32 is from float64 on this model (teacher-forced token log-probs):
    # random models with large activations can be ill-conditioned beyond the 1e-4 bar. (Not for a
    # full-size model: a float64 copy of T0_3B would not fit in memory beside it.)
    model64, f64_gap = (copy.deepcopy(model).double() if f64 else None), 0.0
    for ids, chs in zip(inputs, choices):
        x = torch.tensor([ids])
        g, b = hf_generate(model, x, kw)
        greedy.append(g)
        beams.append(b)
        toks = g["ids"]
        if model64 is not None:
            f64_gap = max(f64_gap, teacher_gap(model, model64, x, [cfg.decoder_start_token_id] + toks[:-1], toks))
        row = []
        for c in chs:
            lp32 = teacher_logprobs(model, x, [cfg.decoder_start_token_id] + c[:-1], c)
            row.append(sum(lp32))
            if model64 is not None:
                f64_gap = max(f64_gap, teacher_gap(model, model64, x, [cfg.decoder_start_token_id] + c[:-1], c))
        scores.append(row)
    return greedy, beams, scores, f64_gap, model64


def run_t0(binary, args):
    p = subprocess.run([binary, "-q", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"t0 {' '.join(args[:1])} failed: {p.stderr.strip()}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def ids_arg(ids):
    return ",".join(map(str, ids))


def compare(binary, d, device, inputs, choices, refs, tol, f64_logprobs=None, sensitivity=None):
    """The `t0` binary on the model in `d` against HF's `refs` (greedy, beams, scores): a list of
    problems and a list of rounding cases (see `compare_generate`). `f64_logprobs(k, toks)`, when
    given, is HF's float64 run, which a greedy log-prob off HF's float32 by more than `tol` may match
    instead; `sensitivity(k, toks)` how far f32-sized noise moves that run, step by step."""
    greedy, beams, scores = refs
    worst = {"greedy": 0.0, "beam": 0.0, "score": 0.0}
    common = ["--model", d, "--max-new-tokens", str(MAX_NEW), "--json", "--device", device]
    problems, rounding = compare_generate(binary, common, inputs, greedy, beams, tol, worst, f64_logprobs, sensitivity)
    for k, ids in enumerate(inputs):
        row = run_t0(binary, ["score", "--model", d, "--json", "--device", device, "--input-ids", ids_arg(ids),
                              *sum((["--choice-ids", ids_arg(c)] for c in choices[k]), [])])[0]
        err = max(abs(a - b) for a, b in zip(row["scores"], scores[k]))
        worst["score"] = max(worst["score"], err)
        if err > tol * max(len(c) for c in choices[k]):
            problems.append(f"score input {k}: {row['scores']} != HF {scores[k]}")
    return problems, rounding, worst


def compare_generate(binary, common, inputs, greedy, beams, tol, worst, f64_logprobs=None, sensitivity=None, what="",
                     beam_extra=(), length_penalty=1.0):
    """`t0 generate` (arguments `common`) against HF's greedy and beam results: a list of problems and
    a list of rounding cases, which are not failures: a differing id where HF's own top-2 gap is under
    1e-4 (a near-tie), and a log-prob off float64 by no more than f32-sized noise moves it at that
    step (an ill-conditioned step, see `rounding_sensitivity`). The largest differences go into `worst`.
    A beam score is a sum of log-probs over `length ** length_penalty` (the start token counted): it is
    held to `tol` per token so summed and scaled, `tol · max(1, length ** (1 - length_penalty))`."""
    problems, rounding = [], []
    rows = run_t0(binary, ["generate", *common, *sum((["--input-ids", ids_arg(i)] for i in inputs), [])])
    for k, (ref, got) in enumerate(zip(greedy, rows)):
        n = next((j for j, (a, b) in enumerate(zip(ref["ids"], got["token_ids"])) if a != b),
                 None if len(ref["ids"]) == len(got["token_ids"]) else min(len(ref["ids"]), len(got["token_ids"])))
        if n is not None:
            if n < len(ref["gaps"]) and ref["gaps"][n] < TOL:
                rounding.append(f"greedy{what} input {k}: near-tie at step {n} (HF's top-2 gap {ref['gaps'][n]:.1e})")
                continue
            problems.append(f"greedy{what} input {k}: ids {got['token_ids']} != HF {ref['ids']}")
            continue
        err = max((abs(a - b) for a, b in zip(ref["lp"], got["token_logprobs"])), default=0.0)
        worst["greedy"] = max(worst["greedy"], err)
        if err > tol:
            # Where HF's float32 is itself that far off, hold us to its float64 run instead.
            off64 = ([abs(a - b) for a, b in zip(f64_logprobs(k, ref["ids"]), got["token_logprobs"])]
                     if f64_logprobs else [err])
            err64 = max(off64)
            if err64 > tol:
                step = off64.index(err64)
                moved = sensitivity(k, ref["ids"])[step] if sensitivity else 0.0
                line = (f"greedy{what} input {k}: log-prob error {err:.2e} ({err64:.2e} from HF in float64 at step "
                        f"{step}, where f32-sized noise moves it by up to {moved:.2e})")
                (rounding if err64 <= moved else problems).append(line)
    # Beam search of all inputs in one call (their beams share one decoder state).
    beam_rows = run_t0(binary, ["generate", *common, "--num-beams", "3", "--num-return-sequences", "2", *beam_extra,
                                *sum((["--input-ids", ids_arg(i)] for i in inputs), [])])
    for k in range(len(inputs)):
        rows = beam_rows[2 * k: 2 * k + 2]
        got_ids, got_scores = [r["token_ids"] for r in rows], [r["score"] for r in rows]
        if got_ids != beams[k]["ids"]:
            problems.append(f"beam{what} input {k}: {got_ids} != HF {beams[k]['ids']} (possible near-tie)")
        else:
            err = max(abs(a - b) / max(1.0, (len(ids) + 1) ** (1 - length_penalty))
                      for a, b, ids in zip(got_scores, beams[k]["scores"], got_ids))
            worst["beam"] = max(worst["beam"], err)
            if err > tol:
                problems.append(f"beam{what} input {k}: scores {got_scores} != HF {beams[k]['scores']}")
    return problems, rounding


def compare_sampling(binary, d, device, inputs, proc, rng, tol):
    """Sampling on `device` against the CPU model with the same seed (HF's sampler draws other numbers,
    so the reference is ours; the warpers themselves are held to HF's in tests/parity.rs): top-k with
    a drawn temperature, with and without the model's processors. Ids identical, log-probs within `tol`
    (the model's bar: the two paths sum in different orders, and some random models amplify that)."""
    problems = []
    warp = ["--do-sample", "--seed", str(rng.randint(0, 1000)), "--top-k", str(rng.choice([1, 3, 10])),
            "--temperature", str(rng.choice([0.7, 1.0, 1.5])), "--top-p", str(rng.choice([1.0, 0.9]))]
    ids = sum((["--input-ids", ids_arg(i)] for i in inputs), [])
    for extra in ([], processor_args(proc)):
        args = ["generate", "--model", d, "--max-new-tokens", str(MAX_NEW), "--json", *warp, *extra, *ids]
        want = run_t0(binary, [*args, "--device", "cpu"])
        got = run_t0(binary, [*args, "--device", device])
        for k, (g, w) in enumerate(zip(got, want)):
            err = max((abs(a - b) for a, b in zip(g["token_logprobs"], w["token_logprobs"])), default=0.0)
            if g["token_ids"] != w["token_ids"] or err > tol:
                problems.append(f"sampling{' (processors)' if extra else ''} input {k}: {g['token_ids']} on {device}, "
                                f"{w['token_ids']} on the CPU (log-probs {err:.1e} apart)")
    return problems


def check_model_dir(d, binary, device, seed=0):
    """An existing model directory (e.g. T0_3B-shaped random weights from `t0 random-init`): HF's
    references first, in float32 only, then the model is freed before `t0` runs (two float32 copies
    of T0_3B would not fit in 24 GB)."""
    import gc
    rng = random.Random(seed)
    model_type = json.load(open(os.path.join(d, "config.json"))).get("model_type", "t5")
    model = MODEL_CLASSES[model_type].from_pretrained(d, torch_dtype=torch.float32).eval()
    config = model.config
    eos = config.eos_token_id
    specials = {eos, config.pad_token_id, config.decoder_start_token_id}
    words = [t for t in range(min(config.vocab_size, 32000)) if t not in specials]
    inputs = [[rng.choice(words) for _ in range(n)] + [eos] for n in (4, 29, 63)]
    choices = [[[rng.choice(words) for _ in range(rng.randint(0, 4))] + [eos] for _ in range(3)] for _ in inputs]
    greedy, beams, scores, _, _ = hf_reference(model, inputs, choices, f64=False)
    del model
    gc.collect()
    problems, rounding, worst = compare(binary, d, device, inputs, choices, (greedy, beams, scores), TOL)
    desc = (f"{d}: d_model={config.d_model} heads={config.num_heads}x{config.d_kv} d_ff={config.d_ff} "
            f"layers={config.num_layers}+{config.num_decoder_layers} ffn={config.feed_forward_proj} vocab={config.vocab_size}; "
            f"greedy ids {[g['ids'] for g in greedy]}, beams {[b['ids'] for b in beams]}; largest differences from HF: "
            f"greedy log-prob {worst['greedy']:.1e}, beam score {worst['beam']:.1e}, choice score {worst['score']:.1e}")
    return desc, problems, rounding


def check(seed, binary, work, device="cpu"):
    rng = random.Random(seed)
    config = draw_config(rng)
    storage = rng.choice(["f32", "f32", "bf16", "f16"])
    d = os.path.join(work, f"m{seed}")
    model = build(config, seed, storage, d)
    eos, v = config.eos_token_id, config.vocab_size
    specials = {eos, config.pad_token_id, config.decoder_start_token_id}
    words = [t for t in range(v) if t not in specials]
    inputs = [[rng.choice(words) for _ in range(n)] + [eos] for n in (rng.randint(0, 6), rng.randint(7, 40),
                                                                       rng.randint(41, 90))]
    choices = [[[rng.choice(words) for _ in range(rng.randint(0, 4))] + [eos] for _ in range(3)] for _ in inputs]
    greedy, beams, scores, f64_gap, model64 = hf_reference(model, inputs, choices)
    # The bar: 1e-4, or twice HF's own float32-vs-float64 gap where that is larger.
    tol = max(TOL, 2 * f64_gap)

    def f64_logprobs(k, toks):
        return teacher_logprobs(model64, torch.tensor([inputs[k]]), [config.decoder_start_token_id] + toks[:-1], toks)

    problems, rounding, _ = compare(binary, d, device, inputs, choices, (greedy, beams, scores), tol, f64_logprobs,
                                lambda k, toks: rounding_sensitivity(model64, lambda: f64_logprobs(k, toks)))
    # Greedy and beam search again with logits processors at work (drawn after everything above,
    # so the models and inputs of a seed do not depend on this round).
    proc, beam_opts = draw_processors(rng), draw_beam_options(rng)
    kw = {"use_cache": False} if config.num_decoder_layers > config.num_layers else {}
    refs = [hf_generate(model, torch.tensor([x]), {**kw, **proc}, beam_opts) for x in inputs]
    common = ["--model", d, "--max-new-tokens", str(MAX_NEW), "--json", "--device", device, *processor_args(proc)]
    more, more_rounding = compare_generate(binary, common, inputs, [g for g, _ in refs], [b for _, b in refs], tol,
                                       {"greedy": 0.0, "beam": 0.0},
                                       lambda k, toks: processed_logprobs(model64, torch.tensor([inputs[k]]), toks, proc),
                                       lambda k, toks: rounding_sensitivity(model64, lambda: processed_logprobs(
                                           model64, torch.tensor([inputs[k]]), toks, proc)),
                                       what=" (processors)", beam_extra=beam_args(beam_opts),
                                       length_penalty=beam_opts["length_penalty"])
    problems, rounding = problems + more, rounding + more_rounding
    if device != "cpu":
        problems += compare_sampling(binary, d, device, inputs, proc, rng, tol)
    desc = (f"d_model={config.d_model} heads={config.num_heads}x{config.d_kv} d_ff={config.d_ff} "
            f"layers={config.num_layers}+{config.num_decoder_layers} buckets={config.relative_attention_num_buckets}/"
            f"{config.relative_attention_max_distance} ffn={config.feed_forward_proj} "
            f"tied={config.tie_word_embeddings} type={config.model_type} vocab={v} eos={eos} start={config.decoder_start_token_id} "
            f"eps={config.layer_norm_epsilon} storage={storage}{' sharded' if seed % 3 == 1 else ''} "
            f"hf32-vs-64={f64_gap:.0e} processors: penalty={proc['repetition_penalty']} "
            f"ngram={proc['no_repeat_ngram_size']} min_new={proc['min_new_tokens']} "
            f"beams: length_penalty={beam_opts['length_penalty']} early_stopping={beam_opts['early_stopping']}")
    return desc, problems, rounding


PIECES = ["hello", "World", "the", "cast-iron", "don't", "U.S.A.", "3.14", "1,000", "naïve", "café", "Straße",
          "東京", "日本語", "😀", "👍🏽", "ﬁ", "Ｆｕｌｌ", "①", "x²", "\u200b", "\u00a0", "\t", "\n", "\r\n", "  ", " ",
          "<extra_id_0>", "<extra_id_99>", "</s>", "<pad>", "<unk>", "a</s>b", "!", "?", "...", "—", "\"", "'", "(",
          "<", ">", "&", "\\", "/", "Ω", "İ", "ǅ", "e\u0301", "ا", "русский", "\x07", "™", "€", "½", "ℌ", "㎏", "▁",
          "▁▁x", "Question:", "Answer:"]


def check_texts(n, seed, binary, model_dir="tests/fixtures/models/t0-tiny"):
    """`t0 tokenize` against T5TokenizerFast on n random texts; returns the mismatches. The default
    model_dir holds T5's real spiece.model + tokenizer_config.json, as T0_3B has."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(seed)
    bad = []
    for _ in range(n):
        text = "".join(rng.choice(PIECES) + rng.choice(["", " ", "  "]) for _ in range(rng.randint(1, 12)))
        got = run_t0(binary, ["tokenize", "--model", model_dir, "--json", "--", text])[0]["ids"]
        ref = tok(text).input_ids
        if got != ref:
            bad.append(f"{text!r}: {got} != HF {ref}")
    return bad


SPM_VARIANTS = {
    "nmt_nfkc": {},
    "identity": {"normalization_rule_name": "identity"},
    "nfkc_cf-keep-spaces": {"normalization_rule_name": "nmt_nfkc_cf", "remove_extra_whitespaces": False},
    "byte-fallback": {"byte_fallback": True},
    "no-dummy-prefix": {"add_dummy_prefix": False},
    "split-digits": {"split_digits": True},
}


def spm_variant_dirs(work):
    """Trains one small unigram vocabulary per SPM_VARIANTS entry; returns {name: model dir}."""
    import sentencepiece as spm
    from transformers import T5Tokenizer
    rng = random.Random(0)
    syl = ["ka", "to", "ri", "un", "ex", "ba", "ne", "zu", "qu", "sh", "th", "ing", "ed", "é", "ü", "ñ", "ø", "東",
           "京", "日", "本", "ру", "ск", "ий", "ال", "عر", "😀", "1", "2", "3"]
    words = ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    words += ["the", "cat", "naïve", "café", "ﬁle", "Ｆｕｌｌ", "3.14", "e-mail", "don't", "Hello", "WORLD"]
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w") as f:
        for _ in range(30000):
            line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 15)))
            f.write(line + rng.choice(["", ".", "!", " ?", ",", "  x"]) + "\n")
    dirs = {}
    for name, opts in SPM_VARIANTS.items():
        prefix = os.path.join(work, name)
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, model_type="unigram", vocab_size=800, character_coverage=1.0,
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
            **{"normalization_rule_name": "nmt_nfkc", **opts})
        d = os.path.join(work, f"tok-{name}")
        shutil.rmtree(d, ignore_errors=True)
        T5Tokenizer(vocab_file=prefix + ".model", legacy=True).save_pretrained(d)
        for extra in ["added_tokens.json", "tokenizer.json"]:
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))
        shutil.copy("tests/fixtures/models/t0-tiny/config.json", d)  # `t0 tokenize` reads only the tokenizer
        dirs[name] = d
    return dirs


def seeds(spec):
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-9", help="e.g. 0-19 or 3,7,12-15")
    ap.add_argument("--t0", default="target/release/t0", help="the t0 binary")
    ap.add_argument("--device", default="cpu", help="`t0 generate/score --device`: cpu, host (the device path on the "
                    "CPU) or cuda (a build with feature cuda)")
    ap.add_argument("--texts", type=int, default=0, help="also check the tokenizer on this many random texts")
    ap.add_argument("--spm-variants", action="store_true", help="with --texts: also on six trained vocabularies")
    ap.add_argument("--work", default="/tmp/t0-cross-check", help="where the models are written")
    ap.add_argument("--model", help="instead of random models, check this model directory (float32 references "
                    "only, e.g. T0_3B-shaped random weights: 2 x 11.4 GB, run one after the other)")
    args = ap.parse_args()
    if args.model:
        torch.set_num_threads(os.cpu_count())
        desc, problems, rounding = check_model_dir(args.model, args.t0, args.device)
        print(f"{'ok' if not problems else 'MISMATCH'}{rounding_note(rounding)}  {desc}", flush=True)
        for p in problems + [f"(rounding) {t}" for t in rounding]:
            print(f"    {p}", flush=True)
        sys.exit(1 if problems else 0)
    torch.set_num_threads(1)
    failed = 0
    for seed in seeds(args.seeds):
        desc, problems, rounding = check(seed, args.t0, args.work, args.device)
        status = "ok" if not problems else "MISMATCH"
        print(f"seed {seed}: {status}{rounding_note(rounding)}  {desc}", flush=True)
        for p in problems + [f"(rounding) {t}" for t in rounding]:
            print(f"    {p}", flush=True)
        failed += bool(problems)
    print(f"{failed} of {len(seeds(args.seeds))} models mismatched")
    if args.texts:
        vocabularies = {"T5 (tests/fixtures/models/t0-tiny)": "tests/fixtures/models/t0-tiny"}
        if args.spm_variants:
            vocabularies.update(spm_variant_dirs(os.path.join(args.work, "spm")))
        for name, d in vocabularies.items():
            bad = check_texts(args.texts, seeds(args.seeds)[0], args.t0, d)
            for b in bad:
                print(f"    tokenizer {name}: {b}")
            print(f"{name}: {len(bad)} of {args.texts} texts tokenized differently")
            failed += bool(bad)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
