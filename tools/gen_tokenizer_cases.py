#!/usr/bin/env python3
"""Generate the t0-tokenizer test fixtures from HF transformers (4.x) and tokenizers.

Writes, next to the given spiece.model (default tests/fixtures/t5-tokenizer/):

- cases_extra.jsonl : our own texts (T0 prompts, odd Unicode, whitespace, long texts, seeded
                      random mixtures) with the same fields as cases.jsonl plus decodes.
- decodes.jsonl     : for every text of cases.jsonl (the 340 shared cases), HF's decodes.
- decode_ids.jsonl  : seeded random id sequences (specials, extra ids, out-of-range ids mixed in)
                      with HF's fast and slow decodes, skipping special tokens or not.
- tokenizer.json    : T5TokenizerFast's tokenizer.json, used by the tokenizer.json loader tests
                      and by the criterion bench (HF's `tokenizers` crate loads it).
- cases_random.jsonl : 1,500 seeded random texts drawn from all of Unicode (weighted towards
                      compatibility forms, marks, CJK, emoji, controls, spaces and special
                      tokens), with T5TokenizerFast's ids: a differential fuzz corpus.
- configs/NAME/tokenizer_config.json and configs.jsonl : model directories that differ from the
                      defaults only by their tokenizer_config.json (legacy=False,
                      add_prefix_space=False, fewer extra ids, an extra special token, strip
                      flags), with what T5TokenizerFast.from_pretrained(dir) gives on a few texts.

Fields:
- ids_slow      T5Tokenizer(vocab_file, legacy=True)(text).input_ids          (sentencepiece)
- ids_fast      T5TokenizerFast.from_pretrained(dir)(text).input_ids          (= AutoTokenizer for T0)
- tokens_fast   fast.convert_ids_to_tokens(ids_fast)
- decoded       slow.decode(ids_slow, skip_special_tokens=True)               (as in cases.jsonl)
- decoded_fast  fast.decode(ids_fast, skip_special_tokens=True)
- decoded_fast_keep  fast.decode(ids_fast, skip_special_tokens=False)
- decoded_slow_keep  slow.decode(ids_slow, skip_special_tokens=False)

CI never runs this: the outputs are committed. Run with a transformers 4.x environment:

    /work/pyenv/bin/python tools/gen_tokenizer_cases.py [tests/fixtures/t5-tokenizer]
"""

import json
import os
import random
import shutil
import sys
import tempfile

from transformers import T5Tokenizer, T5TokenizerFast

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/t5-tokenizer"
SPIECE = os.path.join(OUT, "spiece.model")

U = "\u2581"

T0_PROMPTS = [
    "Is this review positive or negative? Review: the soup was cold and the waiter never came back",
    "Suppose it's true that the cat sat on the mat. Then, is \"the mat was under the cat\" always, sometimes, or never true?",
    "Given that Paris is the capital of France, does it follow that France has a capital? Yes, no, or maybe?",
    "Premise: A man is playing a guitar on stage.\nHypothesis: A man is performing music.\nDoes the premise entail the hypothesis?",
    "What is the sentiment of the following movie review? \"I laughed, I cried, I want my two hours back.\"",
    "Question: Which is heavier, a kilogram of feathers or a kilogram of steel?\nAnswer:",
    "Summarize: The quarterly report shows revenue up 12% year-over-year, driven by cloud services (+34%).",
    "Translate to French: Where is the nearest train station?",
    "Choose the best answer. The sun rises in the ___. Options: east, west, north, south",
    "Answer the following question: who wrote \"Pride and Prejudice\"?",
    "Context: The Eiffel Tower, completed in 1889, is 330 m tall.\nQuestion: When was it completed?\nAnswer: 1889",
    "Fill in the blank: A stitch in time saves ____.",
    "Sentence 1: \"The bank raised rates.\" Sentence 2: \"She sat on the river bank.\" Is \"bank\" used in the same sense?",
    "Generate a title for this article: Scientists discover water ice on the Moon's south pole craters.",
    "Paraphrase the sentence: It's raining cats and dogs.",
    "Topic classification (World, Sports, Business, Sci/Tech): Apple unveils the new M4 chip.",
    "Does \"it\" refer to the trophy? The trophy doesn't fit into the brown suitcase because it's too large.",
    "Extract the date from: 'Meeting moved to 2024-03-15 at 14:30 UTC (was 03/14/2024).'",
    "Q: 17 * 23 = ? A: 391. Q: 3.14159 * 2 = ? A:",
    "<extra_id_0> is the capital of <extra_id_1>.",
    "The <extra_id_0> walks in <extra_id_1> park",
    "Answer: <extra_id_0></s>",
    "Review: \u201cBest purchase ever!!!\u201d \u2014 5/5 \u2605\u2605\u2605\u2605\u2605 Is it positive?",
    "Quel est le sentiment de cette critique\u00a0? \u00ab\u00a0Tr\u00e8s d\u00e9cevant\u00a0\u00bb",
    "Wie hei\u00dft die Hauptstadt von \u00d6sterreich? Antwort: Wien",
    "\u00bfCu\u00e1l es la respuesta correcta? \u00a1Vamos!",
    "Pick one: (A) yes (B) no (C) it is not possible to tell",
    "Title: Breaking\tNews\nBody: Markets\t\tfell\r\nsharply.",
]

ODD_UNICODE = [
    "\uff21\u0301 fullwidth A with combining acute",
    "\uff41\u0308\uff42 fullwidth with diaeresis",
    "e\u0301\u0301\u0301 stacked accents",
    "\u1100\u1161\u11a8 Hangul jamo, \ud55c\uad6d\uc5b4 precomposed",
    "\u0915\u094d\u0937 \u0928\u092e\u0938\u094d\u0924\u0947 Devanagari conjuncts",
    "\u0600\u0661\u0662 Arabic number sign (prepend) then digits",
    "\u0627\u0644\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645 \u200f RTL mark",
    "\ufb01nance \ufb02ow \ufb00 ligatures",
    "\u210c\u2102\u2115 \u2160\u2161\u2162 \u2460\u2461 \u00b2\u00b3 \u00bd \u2153",
    "\uff76\uff9e\uff77\uff9e half-width katakana with dakuten",
    "\u3300 \u3314 \u337f squared CJK",
    "\uff1cpad\uff1e fullwidth brackets pad",
    "\uff1c/s\uff1e fullwidth eos",
    "\uff1cextra_id_0\uff1e fullwidth sentinel",
    "\uff1cunk\uff1e and \uff1cextra_id_99\uff1e",
    "a\ufe0f b\ufe0e variation selectors \u2764\ufe0f",
    "\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5",
    "\U0001d400\U0001d401\U0001d402 math bold, \U0001d7ce\U0001d7cf math digits",
    "zero\u200bwidth\u200cjoin\u200dand\u2060word\ufeffjoiner",
    "soft\u00adhyphen and non\u2011breaking\u2010hyphen",
    "\u0130stanbul \u0131 dotless, \u1e9e capital sharp s",
    "\u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u1f00\u1f50",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0401\u0436",
    "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd Hebrew with points",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u0e04\u0e23\u0e31\u0e1a Thai",
    "\u1781\u17d2\u1798\u17c2\u179a Khmer",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u3053\u3093\u306b\u3061\u306f\u3002",
    "\u00c5\u030a ring twice, A\u030a\u0301",
    "\u2126 \u212b \u2003em\u2002en\u2009thin space",
    "\u3000\u3000ideographic leading",
    "trailing ideographic\u3000\u3000",
    "\U0001f600" * 20,
    "\u0301 leading combining mark",
    "\u200d\u200d only joiners around",
    "\ud7a3\ud7a4 last Hangul syllable and after",
    "\U000e0041\U000e0042 tag characters",
    "\U0010ffff\ufffd private and replacement",
    "\u00a0\u00a0nbsp\u00a0\u00a0runs\u00a0",
    "\u2028line sep\u2029para sep\u0085nel",
    "\u2581already\u2581metaspaced \u2581 \u2581\u2581",
    "\u2581",
    " \u2581 ",
]

WHITESPACE = [
    " ",
    "  ",
    "\t",
    "\n\n\n",
    "\r\n",
    "\r\n\r\n",
    " \r\n x",
    "x\r\n",
    "a\rb",
    "a\x0bb\x0cc",
    "a \t b \t\t c",
    "   leading three",
    "trailing three   ",
    "  both  sides  ",
    "mid     five",
    "tab\tthen  two",
    "\x00nul\x00char",
    "bell\x07 esc\x1b del\x7f",
    "\x1c\x1d\x1e\x1f info separators",
    "c1 \x80\x81\x9f controls",
    " </s>",
    "a </s> b",
    "a  </s>  b",
    "a\t</s>\tb",
    "<pad><pad><pad>",
    "<pad> </s> <unk> <extra_id_0> <extra_id_99>",
    "<extra_id_100> <extra_id_-1> <extra_id_01> <extra_id_>",
    "<<pad>> <</s>> <<extra_id_5>>",
    "x<extra_id_7>y",
    "<s> </s> <mask> [MASK] <|endoftext|>",
    "</s>hello",
    "hello</s>world</s>",
    "<unk>",
    "<UNK> <Pad> </S>",
    "<extra_id_0>",
    "\u3000</s>\u3000",
]


def long_texts():
    rnd = random.Random(1234)
    words = ("the quick brown fox jumps over lazy dog T0 prompts zero-shot generalization "
             "multitask training enables 3B parameters encoder decoder").split()
    out = []
    out.append(" ".join(rnd.choice(words) for _ in range(1500)))
    out.append("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60)
    out.append("a" * 3000)
    out.append("ab" * 1000 + " " + "xyz" * 700)
    out.append("\u00e9" * 500 + " " + "\u4e2d" * 500)
    out.append("\n".join(f"{i}. item number {i} costs ${i * 3}.99" for i in range(200)))
    out.append("-" * 40 + " " + "=" * 80 + " " + "." * 33 + " " + "_" * 17)
    out.append("supercalifragilisticexpialidocious" * 20)
    out.append("https://example.com/path/to/page?query=1&x=%20y#frag " * 30)
    out.append("def f(x):\n    return [i**2 for i in range(x) if i % 2 == 0]\n" * 25)
    return out


POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" \t\n\r.,;:!?'\"()[]{}<>/\\|-_=+*&^%$#@~`")
    + ["  ", "   ", "\u00a0", "\u3000", "\u200b", "\u2581", "\u0301", "\u0308", "\u200d", "\ufe0f",
       "\u00e9", "\u00df", "\u00c6", "\u0153", "\ufb01", "\u2460", "\u00bd", "\uff21", "\uff41", "\uff10",
       "\uff76", "\uff9e", "\u4e2d", "\u6587", "\u3042", "\u30a2", "\ud55c", "\u0915", "\u094d", "\u0627",
       "\u05d0", "\u0e01", "\u0e31", "\u03b1", "\u0416", "\U0001f600", "\U0001f44d", "\U0001f3fd",
       "\U0001f1fa", "\U0001f1f8", "\x00", "\x01", "\x7f", "\x85", "\u2028", "\ufeff", "\ufffd",
       "\U0001d400", "\u2126", "\u212b", "\u0600", "\u1100", "\u1161", "\u11a8", "</s>", "<pad>",
       "<unk>", "<extra_id_0>", "<extra_id_42>", "<", ">", "extra_id_1", "\uff1c", "\uff1e",
       " the", " and", "ing", "tion", " T0"]
)


def random_texts(n, seed):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        k = rnd.randint(1, 60)
        out.append("".join(rnd.choice(POOL) for _ in range(k)))
    return out


def main():
    tmp = tempfile.mkdtemp()
    shutil.copy(SPIECE, os.path.join(tmp, "spiece.model"))
    slow = T5Tokenizer(SPIECE, legacy=True)
    fast = T5TokenizerFast.from_pretrained(tmp)
    assert len(fast) == 32100 and len(slow) == 32100

    def record(text):
        ids_slow = slow(text)["input_ids"]
        ids_fast = fast(text)["input_ids"]
        return {
            "text": text,
            "ids_slow": ids_slow,
            "ids_fast": ids_fast,
            "tokens_fast": fast.convert_ids_to_tokens(ids_fast),
            "decoded": slow.decode(ids_slow, skip_special_tokens=True),
            "decoded_fast": fast.decode(ids_fast, skip_special_tokens=True),
            "decoded_fast_keep": fast.decode(ids_fast, skip_special_tokens=False),
            "decoded_slow_keep": slow.decode(ids_slow, skip_special_tokens=False),
        }

    texts = T0_PROMPTS + ODD_UNICODE + WHITESPACE + long_texts() + random_texts(80, 20240601)
    seen = set()
    with open(os.path.join(OUT, "cases_extra.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            if t in seen:
                continue
            seen.add(t)
            f.write(json.dumps(record(t), ensure_ascii=False) + "\n")
    print("cases_extra.jsonl:", len(seen))

    shared = [json.loads(l) for l in open(os.path.join(OUT, "cases.jsonl"), encoding="utf-8")]
    with open(os.path.join(OUT, "decodes.jsonl"), "w", encoding="utf-8") as f:
        for c in shared:
            r = record(c["text"])
            assert r["ids_fast"] == c["ids_fast"], c["text"]
            f.write(json.dumps({k: r[k] for k in ("text", "tokens_fast", "decoded_fast",
                                                   "decoded_fast_keep", "decoded_slow_keep")},
                               ensure_ascii=False) + "\n")
    print("decodes.jsonl:", len(shared))

    rnd = random.Random(77)
    specials = [0, 1, 2, 32000, 32050, 32099, 3, 5]
    with open(os.path.join(OUT, "decode_ids.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(150):
            n = rnd.randint(0, 25)
            ids = []
            for _ in range(n):
                r = rnd.random()
                if r < 0.25:
                    ids.append(rnd.choice(specials))
                else:
                    ids.append(rnd.randrange(3, 32000))
            rec = {
                "ids": ids,
                "fast_skip": fast.decode(ids, skip_special_tokens=True),
                "fast_keep": fast.decode(ids, skip_special_tokens=False),
                "slow_skip": slow.decode(ids, skip_special_tokens=True),
                "slow_keep": slow.decode(ids, skip_special_tokens=False),
                "tokens": fast.convert_ids_to_tokens(ids),
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print("decode_ids.jsonl: 150")

    fast.backend_tokenizer.save(os.path.join(OUT, "tokenizer.json"))
    print("tokenizer.json written")

    write_random_cases(fast)
    write_configs()


RANGES = [(0x0, 0x2FFFF, 10), (0x20, 0x7E, 30), (0x0, 0x1F, 2), (0x7F, 0xFF, 6), (0x100, 0x24F, 3),
          (0x300, 0x36F, 4), (0x370, 0x4FF, 3), (0x590, 0x6FF, 2), (0x900, 0x97F, 2), (0xE00, 0xE7F, 1),
          (0x1100, 0x11FF, 2), (0x1E00, 0x1FFF, 2), (0x2000, 0x206F, 4), (0x2070, 0x218F, 3),
          (0x2190, 0x2BFF, 2), (0x3000, 0x33FF, 4), (0x4E00, 0x9FFF, 3), (0xAC00, 0xD7A3, 2),
          (0xF900, 0xFAFF, 1), (0xFB00, 0xFB4F, 2), (0xFE00, 0xFE6F, 2), (0xFF00, 0xFFEF, 4),
          (0x1D400, 0x1D7FF, 2), (0x1F000, 0x1FAFF, 3), (0xE0000, 0xE007F, 1)]
WORDS = "the of and to in is that for it as with was on be by this are at from or an not".split()


def write_random_cases(fast, n=1500, seed=424242):
    rnd = random.Random(seed)

    def ch():
        a, b, _ = rnd.choices(RANGES, [w for _, _, w in RANGES])[0]
        c = rnd.randint(a, b)
        return " " if 0xD800 <= c <= 0xDFFF else chr(c)

    with open(os.path.join(OUT, "cases_random.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(n):
            parts = []
            for _ in range(rnd.randint(0, 50)):
                r = rnd.random()
                if r < 0.45:
                    parts.append(ch())
                elif r < 0.7:
                    parts.append(" " + rnd.choice(WORDS))
                elif r < 0.8:
                    parts.append(" " * rnd.randint(1, 4))
                elif r < 0.85:
                    parts.append(rnd.choice(["</s>", "<pad>", "<unk>", "<extra_id_%d>" % rnd.randint(0, 105),
                                             "<s>", "\r\n", "\t", "\u2581"]))
                else:
                    parts.append(ch() + ch())
            t = "".join(parts)
            f.write(json.dumps({"text": t, "ids_fast": fast(t)["input_ids"]}, ensure_ascii=False) + "\n")
    print("cases_random.jsonl:", n)


CONFIG_TEXTS = [
    "translate English to German: The house is wonderful.",
    " leading space and <extra_id_0> sentinel",
    "<extra_id_0>starts with a sentinel",
    "x <extra_id_1> y <extra_id_9>z</s>",
    "<sep> a <sep>b",
    "word<extra_id_5> <extra_id_5> <extra_id_5>end",
    "\u2581literal  metaspace   runs",
    "",
]

EXTRA100 = [f"<extra_id_{i}>" for i in range(100)]


def strip_flags(n):
    return {
        str(32099 - i): {"content": f"<extra_id_{i}>", "lstrip": True, "rstrip": True,
                         "normalized": False, "single_word": False, "special": True}
        for i in range(n)
    }


CONFIGS = {
    "legacy_false": {"legacy": False},
    "no_prefix_space": {"add_prefix_space": False},
    "ten_extra_ids": {"extra_ids": 10},
    "sep_token": {"additional_special_tokens": EXTRA100 + ["<sep>"]},
    "t0_style": {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "extra_ids": 100,
                 "additional_special_tokens": EXTRA100, "model_max_length": 512,
                 "tokenizer_class": "T5Tokenizer"},
    "strip_flags": {"added_tokens_decoder": strip_flags(100)},
}


def write_configs():
    recs = []
    for name, cfg in CONFIGS.items():
        d = os.path.join(OUT, "configs", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=1, ensure_ascii=False)
        tmp = tempfile.mkdtemp()
        shutil.copy(SPIECE, os.path.join(tmp, "spiece.model"))
        shutil.copy(os.path.join(d, "tokenizer_config.json"), os.path.join(tmp, "tokenizer_config.json"))
        fast = T5TokenizerFast.from_pretrained(tmp)
        for t in CONFIG_TEXTS:
            ids = fast(t)["input_ids"]
            recs.append({"config": name, "text": t, "ids_fast": ids, "vocab_size": len(fast),
                         "decoded_fast": fast.decode(ids, skip_special_tokens=True),
                         "decoded_fast_keep": fast.decode(ids, skip_special_tokens=False)})
    with open(os.path.join(OUT, "configs.jsonl"), "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print("configs.jsonl:", len(recs))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "--configs-only":
        write_configs()
    elif len(sys.argv) > 2 and sys.argv[2] == "--random-only":
        _tmp = tempfile.mkdtemp()
        shutil.copy(SPIECE, os.path.join(_tmp, "spiece.model"))
        write_random_cases(T5TokenizerFast.from_pretrained(_tmp))
    else:
        main()
