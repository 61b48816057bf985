#!/usr/bin/env python3
"""Side-by-side CPU benchmark of T0_3B-shaped models: HF transformers (f32, bf16), CTranslate2 (f32, int8)
and t0-rs (f32, bf16, int8), one engine at a time, same weights, same machine, same run.

Not part of CI. Setup (a virtualenv is advised):

    pip install torch transformers==4.57.6 ctranslate2 sentencepiece safetensors protobuf
    cargo build --release -p t0-cli
    ./target/release/t0 random-init --config tests/fixtures/t0_3b/config.json --out /path/t0_3b-random
    python benches/peers/run_peers.py --model /path/t0_3b-random --work /path/scratch

Each engine runs in its own subprocess (so its peak RSS is its own), with as many threads as there are cores:
random input ids (64 by default, ending in </s>), then greedy decoding of `--new-tokens` steps with EOS
suppressed (so every engine decodes exactly that many tokens). Figures:
  encoder_ms          mean of 3 encoder passes after a warm-up;
  decode_ms_per_step  the decode steps' time / steps (HF: a cached decoder loop timed per step;
                      CTranslate2: (time of N tokens - time of 1 token) / (N - 1), which subtracts its encoder);
  tokens_per_s        batch * steps / decode time;
  peak_rss_bytes      the subprocess's VmHWM (CTranslate2: after conversion, which runs in another process).
Results go to --json (default benches/peers/results.json) and a Markdown table on stdout. With --rounds N the
engine list runs N times, interleaved (t0, peer, t0, peer, ...), every run kept in the JSON and the table
showing each engine's median: batch-1 decode is memory-bound, and this VM's bandwidth moves by tens of
percent from minute to minute, so one run per engine can put two engines in different weather.
"""
import argparse
import json
import statistics
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def random_inputs(batch, n, vocab=32000, seed=0):
    import random
    rng = random.Random(seed)
    return [[rng.randrange(2, vocab) for _ in range(n - 1)] + [1] for _ in range(batch)]


# ------------------------------------------------------------------------------------------------ engines
def run_hf(model_dir, dtype, batch, n_in, n_new, device="cpu"):
    import torch
    from transformers import T5ForConditionalGeneration
    torch.set_num_threads(os.cpu_count())
    td = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]

    def now():
        # GPU work is asynchronous: wait for it before reading the clock.
        if device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter()

    t = now()
    model = T5ForConditionalGeneration.from_pretrained(model_dir, torch_dtype=td).eval().to(device)
    load_s = now() - t
    ids = torch.tensor(random_inputs(batch, n_in), device=device)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        enc = model.encoder(input_ids=ids, attention_mask=mask)
        t = now()
        for _ in range(3):
            enc = model.encoder(input_ids=ids, attention_mask=mask)
        encoder_ms = (now() - t) / 3 * 1e3
        dec = torch.zeros((batch, 1), dtype=torch.long, device=device)
        past = None
        # one warm-up step
        model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=dec, use_cache=True)
        # The first step also computes every layer's cross-attention keys and values: timed apart,
        # then `n_new` steps.
        first_s = 0.0
        for step in range(n_new + 1):
            if step <= 1:
                t = now()
            out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=dec, past_key_values=past,
                        use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
            logits[:, 1] = -float("inf")
            dec = logits.argmax(-1, keepdim=True)
            if step == 0:
                first_s = now() - t
        decode_s = now() - t
    step_ms = decode_s / n_new * 1e3
    r = dict(load_s=load_s, encoder_ms=encoder_ms, prompt_ms=encoder_ms + first_s * 1e3 - step_ms,
             decode_ms_per_step=step_ms, tokens_per_s=batch * n_new / decode_s, peak_rss_bytes=peak_rss())
    if device != "cpu":
        r.update(device=torch.cuda.get_device_name(), gpu_peak_bytes=torch.cuda.max_memory_allocated())
    return r


def convert_ct2(model_dir, out_dir, quant):
    if os.path.exists(os.path.join(out_dir, "model.bin")):
        return 0.0
    import ctranslate2
    t = time.perf_counter()
    ctranslate2.converters.TransformersConverter(model_dir, low_cpu_mem_usage=True).convert(out_dir, quantization=quant, force=True)
    return time.perf_counter() - t


def run_ct2(ct2_dir, dtype, batch, n_in, n_new, device="cpu"):
    import ctranslate2
    compute = {"f32": "float32", "int8": "int8", "bf16": "bfloat16"}[dtype]
    t = time.perf_counter()
    tr = ctranslate2.Translator(ct2_dir, device=device, compute_type=compute, intra_threads=os.cpu_count(),
                                inter_threads=1)
    load_s = time.perf_counter() - t
    # CTranslate2 takes token strings: map ids through the vocabulary its converter saved.
    vjson, vtxt = os.path.join(ct2_dir, "shared_vocabulary.json"), os.path.join(ct2_dir, "shared_vocabulary.txt")
    if os.path.exists(vjson):
        vocab = json.load(open(vjson))
    else:
        vocab = [line.rstrip("\n") for line in open(vtxt)]
    toks = [[vocab[i] for i in row] for row in random_inputs(batch, n_in)]

    def gen(steps):
        t = time.perf_counter()
        tr.translate_batch(toks, beam_size=1, max_decoding_length=steps, min_decoding_length=steps,
                           suppress_sequences=[[vocab[1]]], return_scores=False)
        return time.perf_counter() - t

    gen(2)  # warm-up
    one = min(gen(1) for _ in range(3))
    full = gen(n_new + 1)
    encoder_ms = one * 1e3  # encoder + one step: an upper bound on the encoder alone
    decode_s = full - one
    step_ms = decode_s / n_new * 1e3
    # The first step computes every layer's cross-attention keys and values: (encoder + first
    # step) - (a later step) is the prompt's cost, encoder and cross K/V, as t0's encoder_ms +
    # cross_kv_ms.
    return dict(load_s=load_s, encoder_ms=encoder_ms, encoder_note="encoder + first step",
                prompt_ms=encoder_ms - step_ms, decode_ms_per_step=step_ms, tokens_per_s=batch * n_new / decode_s,
                peak_rss_bytes=peak_rss())


def run_t0(t0_bin, model_dir, dtype, batch, n_in, n_new, device="cpu"):
    args = [t0_bin, "bench", "--model", model_dir, "--batch", str(batch), "--input-tokens", str(n_in),
            "--new-tokens", str(n_new), "--json"]
    if dtype != "f32-mmap":
        args += ["--dtype", dtype]
    if device != "cpu":
        args += ["--device", device]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    # On a device the encoder time includes the cross K/V (DeviceModel::encode computes both).
    r["prompt_ms"] = r["encoder_ms"] + r.get("cross_kv_ms", 0.0)
    r.setdefault("peak_rss_bytes", 0)
    return r


# ------------------------------------------------------------------------------------------------ driver
def child(spec):
    kind, dtype = spec["engine"], spec["dtype"]
    if kind == "hf":
        r = run_hf(spec["model"], dtype, spec["batch"], spec["input_tokens"], spec["new_tokens"], spec["device"])
    elif kind == "ct2":
        r = run_ct2(spec["ct2_dir"], dtype, spec["batch"], spec["input_tokens"], spec["new_tokens"], spec["device"])
    else:
        raise SystemExit(f"unknown engine {kind}")
    print(json.dumps(r))


def main():
    ap = argparse.ArgumentParser(description="t0-rs vs HF transformers vs CTranslate2 on CPU (or a GPU)")
    ap.add_argument("--model", required=True, help="T0_3B-shaped model dir (config.json + model.safetensors)")
    ap.add_argument("--work", required=True, help="scratch dir for CTranslate2 conversions")
    ap.add_argument("--t0", default=os.path.join(ROOT, "target", "release", "t0"))
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--input-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--engines", nargs="+",
                    default=["t0:int8", "ct2:int8", "t0:bf16", "hf:bf16", "t0:f32", "ct2:f32", "hf:f32"],
                    help="engine:dtype, run in this order (t0:f32-mmap = t0 with the file's f32 weights mapped)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the engine list this many times, interleaved (t0, peer, t0, peer, ...); the table "
                         "shows each engine's median (this VM's memory bandwidth moves by tens of percent from "
                         "minute to minute, which a single run per engine cannot tell from a real difference)")
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--spiece", default=os.path.join(ROOT, "..", "shared", "t5-tokenizer", "spiece.model"),
                    help="spiece.model for a model dir without a tokenizer (CTranslate2's converter loads one)")
    ap.add_argument("--device", default="cpu",
                    help="cpu, or cuda for a GPU run (HF on the GPU, t0 with --device cuda, CTranslate2 with "
                         "device='cuda'); default cpu")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(json.loads(a.child))
    # CTranslate2's converter insists on a tokenizer: give a random-weights dir the T5 one, via a dir of
    # symlinks (the model dir itself is left untouched).
    if not any(os.path.exists(os.path.join(a.model, f)) for f in ("spiece.model", "tokenizer.json")):
        linked = os.path.join(a.work, "model-with-tokenizer")
        os.makedirs(linked, exist_ok=True)
        for f in os.listdir(a.model):
            dst = os.path.join(linked, f)
            if not os.path.exists(dst):
                os.symlink(os.path.abspath(os.path.join(a.model, f)), dst)
        if not os.path.exists(os.path.join(linked, "spiece.model")):
            os.symlink(os.path.abspath(a.spiece), os.path.join(linked, "spiece.model"))
        a.model = linked
    results = []
    plan = [(rnd, batch, ed) for batch in a.batch for rnd in range(a.rounds) for ed in a.engines]
    for rnd, batch, ed in plan:
        engine, dtype = ed.split(":")
        spec = dict(engine=engine, dtype=dtype, model=a.model, batch=batch, input_tokens=a.input_tokens,
                    new_tokens=a.new_tokens, device=a.device)
        print(f"== {engine} {dtype} batch {batch} round {rnd + 1}/{a.rounds}", file=sys.stderr, flush=True)
        try:
            if engine == "t0":
                r = run_t0(a.t0, a.model, dtype, batch, a.input_tokens, a.new_tokens, a.device)
            else:
                if engine == "ct2":
                    spec["ct2_dir"] = os.path.join(a.work, f"ct2-{dtype}")
                    q = {"f32": "float32", "int8": "int8", "bf16": "bfloat16"}[dtype]
                    conv = subprocess.run([sys.executable, "-c",
                                           f"import sys; sys.path.insert(0, {HERE!r}); import run_peers as r; "
                                           f"print(r.convert_ct2({a.model!r}, {spec['ct2_dir']!r}, {q!r}))"],
                                          check=True, capture_output=True, text=True)
                    spec["convert_s"] = float(conv.stdout.strip().splitlines()[-1])
                out = subprocess.run([sys.executable, __file__, "--model", a.model, "--work", a.work,
                                      "--child", json.dumps(spec)], check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if "convert_s" in spec:
                    r["convert_s"] = spec["convert_s"]
        except subprocess.CalledProcessError as e:
            print(f"   failed: {e.stderr[-2000:]}", file=sys.stderr)
            r = dict(error=e.stderr[-500:])
        r.update(engine=engine, dtype=dtype, batch=batch, round=rnd)
        print(f"   {json.dumps(r)}", file=sys.stderr, flush=True)
        results.append(r)
    with open(a.json + ".tmp", "w") as f:
        json.dump(dict(input_tokens=a.input_tokens, new_tokens=a.new_tokens, cpus=os.cpu_count(), rounds=a.rounds,
                       device=a.device, results=results), f, indent=1)
    os.replace(a.json + ".tmp", a.json)
    print("| engine | dtype | batch | encoder ms | prompt ms (encoder + cross K/V) | decode ms/step | tokens/s | "
          "peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in median_rows(results):
        if "error" in r:
            print(f"| {r['engine']} | {r['dtype']} | {r['batch']} | failed | | | | |")
            continue
        print(f"| {r['engine']} | {r['dtype']} | {r['batch']} | {r['encoder_ms']:.0f} | {r['prompt_ms']:.0f} | "
              f"{r['decode_ms_per_step']:.1f} | {r['tokens_per_s']:.1f} | {r['peak_rss_bytes'] / 1e9:.2f} |")


def median_rows(results):
    """One row per (engine, dtype, batch), first-seen order: each field the median over the rounds that
    did not fail (the row of a single round as it is)."""
    keys = list(dict.fromkeys((r["engine"], r["dtype"], r["batch"]) for r in results))
    rows = []
    for key in keys:
        ok = [r for r in results if (r["engine"], r["dtype"], r["batch"]) == key and "error" not in r]
        if not ok:
            rows.append(dict(engine=key[0], dtype=key[1], batch=key[2], error="every round failed"))
            continue
        fields = ("encoder_ms", "prompt_ms", "decode_ms_per_step", "tokens_per_s", "peak_rss_bytes")
        rows.append(dict(engine=key[0], dtype=key[1], batch=key[2],
                         **{f: statistics.median(r[f] for r in ok) for f in fields}))
    return rows


if __name__ == "__main__":
    main()
