#!/usr/bin/env python3
"""spm_tokenize.py TOKENIZER_MODEL OUTDIR — SentencePiece's own tokenization
of a generated corpus, for test_tokenizer.c.

Writes to OUTDIR:
  vocab.gguf  a tiny but valid llama model (1 layer, n_embd 32, zero
              weights, tied head) carrying the vocabulary of TOKENIZER_MODEL
              as tokenizer.ggml.* arrays: pieces (id_to_piece), scores
              (get_score) and types (is_unknown 2, is_control 3, is_unused 5,
              is_byte 6, else normal 1), bos/eos/unk ids and add_space_prefix
              from the model's normalizer spec; written with our own GGUF
              writer (gguf_writer.py).
  corpus.bin  the corpus with SentencePiece's ids:
                u32 n_categories, then per category u32 len + name bytes;
                u32 n_texts, then per text:
                  u32 category, u32 flags (bit 0: sp.decode(sp.encode(text))
                  == text), u32 n_bytes, UTF-8 bytes, u32 n_ids, i32 ids
                  (sp.encode(text) with BOS prepended).

The corpus (about 3,500 texts) is generated from a fixed seed: ASCII
sentences, whitespace runs (leading, trailing, multiple spaces, tabs,
newlines, carriage returns), punctuation runs, digits and numbers, accented
Latin (precomposed and combining), Greek, Cyrillic, CJK, Hangul, emoji with
ZWJ sequences, skin tones and flags, characters that need byte fallback
(private use, supplementary planes, rare symbols, C0 controls), very long
words, the empty string, single characters, text that looks like control
pieces ("<s>"), compatibility characters that NFKC would change, random code
points from the BMP and the supplementary planes, indented source code, and
random mixtures of all of these.

Normalization: SentencePiece normalizes input with the model's normalizer;
llama.cpp (and orion) do not. The Llama 2 model's normalizer is "identity"
(checked below from the model proto, with add_dummy_prefix on and
remove_extra_whitespaces off), so the texts are given to both unchanged,
including ones NFKC would rewrite.

Exit status 77 means the sentencepiece module is missing (run
scripts/setup.sh).
"""
import os
import random
import struct
import sys

try:
    import sentencepiece as spm
except ImportError as e:  # pragma: no cover
    sys.stderr.write("spm_tokenize.py: %s: install python3-sentencepiece (run scripts/setup.sh)\n" % e)
    sys.exit(77)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402


# ---- the model proto's normalizer spec (a few protobuf fields, by hand) ---------

def _varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def _fields(b):
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("protobuf wire type %d" % wt)
        yield f, wt, v


def normalizer_spec(sp):
    """name, add_dummy_prefix, remove_extra_whitespaces (ModelProto field 3)."""
    spec = {"name": "", "add_dummy_prefix": True, "remove_extra_whitespaces": True}
    for f, wt, v in _fields(sp.serialized_model_proto()):
        if f == 3 and wt == 2:
            for g, _, w in _fields(v):
                if g == 1:
                    spec["name"] = w.decode()
                elif g == 3:
                    spec["add_dummy_prefix"] = bool(w)
                elif g == 4:
                    spec["remove_extra_whitespaces"] = bool(w)
    return spec


# ---- the corpus -------------------------------------------------------------------

WORDS = ("the a an and of to in is was it that he she they we you for on with as at by from this "
         "have not but had his her their what all were when there can said which do if will each "
         "about how up out them then many some so these would other into has more two like time "
         "see way could people my than first water been who oil its now find long down day did get "
         "come made may part over new sound take only little work know place year live me back give "
         "most very after thing our just name good sentence man think say great where help through "
         "much before line right too mean old any same tell boy follow came want show also around "
         "form three small set put end does another well large must big even such because turn here "
         "why ask went men read need land different home us move try kind hand picture again change "
         "off play spell air away animal house point page letter mother answer found study still learn "
         "should America world Hello Lily Tim Once upon program function return tokenizer "
         "unbelievable internationalization antidisestablishmentarianism").split()
GREEK = "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο Καλημέρα κόσμε ελληνικά λέξεις".split()
CYRILLIC = ("Съешь же ещё этих мягких французских булок да выпей чаю Привет мир "
            "Україна Ґанок щастя Беларусь ў").split()
CJK = ["你好", "世界", "中文", "测试", "我们", "今天", "天气", "很好", "日本語", "テスト", "ひらがな", "カタカナ",
       "東京", "漢字", "한국어", "안녕하세요", "세계", "龍", "鬱", "𠀀", "𪚥", "〇", "々"]
ACCENTED = ("café naïve résumé Zürich São Paulo Ångström façade jalapeño piñata Øresund Łódź Kraków "
            "Dvořák Škoda İstanbul ağaç Großstraße fiancée déjà vu coöperate Ærø Þór Dẫn Việt Nam "
            "crème brûlée").split()
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "u\u031b\u0300", "A\u030a", "i\u0307",
             "c\u0327", "z\u030c"]
EMOJI = ["😀", "😂", "🥰", "👍", "👍🏽", "👍🏿", "❤️", "🔥", "🎉", "🚀", "🇫🇷", "🇯🇵", "🏳️‍🌈", "👨‍👩‍👧‍👦",
         "👩🏾‍💻", "🧑‍🤝‍🧑", "🐈‍⬛", "☕", "✨", "🤖", "1️⃣", "#️⃣", "©️", "🫠"]
RARE = ["\ue000", "\ue123", "\uf8ff", "\U000f0000", "\U0010fffd", "\U0001d400", "\U0001d56b", "\U00010000",
        "\U0001f700", "\U00013000", "\u2603", "\u2658", "\u29bf", "\u2bd1", "\u0e3f", "\u20bf", "\u218a",
        "\ufffd", "\ufeff", "\u200b", "\u2060", "\u00ad", "\U000e0041", "\u1680", "\u3000", "\u00a0",
        "\u2028", "\u2029", "\u0085", "\x7f", "\x01", "\x1b", "\x0b", "\x0c", "\x00"]
COMPAT = ["ＡＢＣ", "ｆｕｌｌｗｉｄｔｈ", "ﬁ", "ﬂow", "x²", "H₂O", "½", "Ⅻ", "㎞", "ｶﾀｶﾅ", "①②③", "™", "℃",
          "…", "ǅ", "ſ", "µ", "Å"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "--", "—", "–", "«", "»", "“", "”", "‘", "’",
                                                         "¿", "¡", "§", "¶", "•", "·", "→", "∀", "∑", "≠",
                                                         "√", "∞"]
SPECIALISH = ["<s>", "</s>", "<unk>", "<0x41>", "<|im_start|>", "[INST]", "<<SYS>>", "<pad>", "▁", "▁▁x",
              "\u2581 \u2581"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t", "    ", " \t "]


def gen_corpus(rng):
    cats = []  # (category, text)

    def add(cat, text):
        cats.append((cat, text))

    def sentence(n):
        return " ".join(rng.choice(WORDS) for _ in range(n))

    add("empty", "")
    for c in range(32, 127):
        add("single", chr(c))
    for ch in ["\t", "\n", "\r", "é", "ß", "Ω", "Ж", "中", "한", "😀", "\ue000", "\U0001d400", "\u2581", " "]:
        add("single", ch)
    for _ in range(150):
        add("single", chr(rng.choice([rng.randrange(0x20, 0x7f), rng.randrange(0xa0, 0x3000),
                                      rng.randrange(0x4e00, 0x9fff), rng.randrange(0x1f300, 0x1fa00)])))
    for _ in range(450):
        s = sentence(rng.randint(1, 25))
        if rng.random() < 0.5:
            s = s[0].upper() + s[1:] + rng.choice([".", "!", "?", ",", ";", ":", ""])
        add("ascii", s)
    for _ in range(250):
        words = [sentence(rng.randint(1, 3)) for _ in range(rng.randint(1, 5))]
        s = "".join(w + rng.choice(SPACES) for w in words)
        if rng.random() < 0.5:
            s = rng.choice(SPACES) + s
        if rng.random() < 0.3:
            s = s.rstrip()
        add("whitespace", s)
    for _ in range(30):
        add("whitespace", "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 6))))
    for _ in range(200):
        parts = []
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.5:
                parts.append("".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 6))))
            else:
                parts.append(rng.choice(WORDS))
        add("punctuation", rng.choice(["", " "]).join(parts))
    for _ in range(200):
        k = rng.randrange(5)
        if k == 0:
            s = str(rng.randrange(10 ** rng.randint(1, 18)))
        elif k == 1:
            s = "%.*f" % (rng.randint(0, 6), rng.uniform(-1e6, 1e6))
        elif k == 2:
            s = "%d-%02d-%02d %02d:%02d" % (rng.randint(1900, 2100), rng.randint(1, 12), rng.randint(1, 28),
                                            rng.randrange(24), rng.randrange(60))
        elif k == 3:
            s = "v%d.%d.%d, 0x%x, 1e%d, %d%%" % (rng.randrange(10), rng.randrange(100), rng.randrange(1000),
                                                  rng.randrange(1 << 32), rng.randint(-9, 9), rng.randrange(101))
        else:
            s = sentence(3) + " " + str(rng.randrange(100000)) + " " + sentence(2)
        add("digits", s)
    for _ in range(200):
        ws = [rng.choice(ACCENTED) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.4:
            ws.insert(rng.randrange(len(ws) + 1), rng.choice(WORDS) + rng.choice(COMBINING))
        add("accented", " ".join(ws))
    for _ in range(150):
        add("greek", " ".join(rng.choice(GREEK) for _ in range(rng.randint(1, 10))))
    for _ in range(150):
        add("cyrillic", " ".join(rng.choice(CYRILLIC) for _ in range(rng.randint(1, 10))))
    for _ in range(200):
        sep = rng.choice(["", "", " ", "，", "。", "、"])
        add("cjk", sep.join(rng.choice(CJK) for _ in range(rng.randint(1, 12))))
    for _ in range(200):
        parts = [rng.choice(EMOJI) if rng.random() < 0.6 else rng.choice(WORDS) for _ in range(rng.randint(1, 8))]
        add("emoji", rng.choice(["", " "]).join(parts))
    for _ in range(200):
        parts = [rng.choice(RARE) if rng.random() < 0.6 else rng.choice(WORDS) for _ in range(rng.randint(1, 8))]
        add("byte-fallback", rng.choice(["", " "]).join(parts))
    for _ in range(100):
        k = rng.randrange(4)
        if k == 0:
            s = rng.choice("abcxyz") * rng.randint(50, 600)
        elif k == 1:
            s = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(40, 400)))
        elif k == 2:
            s = "".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60)))
        else:
            s = "".join(rng.choice(CJK + GREEK) for _ in range(rng.randint(10, 60)))
        add("long-word", s)
    for _ in range(100):
        parts = [rng.choice(COMPAT) if rng.random() < 0.6 else rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        add("nfkc-sensitive", " ".join(parts))
    for _ in range(100):
        parts = [rng.choice(SPECIALISH) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        add("special-looking", rng.choice(["", " "]).join(parts))
    for _ in range(150):
        cps = []
        for _ in range(rng.randint(1, 12)):
            plane = rng.choice([0, 0, 0, 1, 2, 14, 15])
            cp = plane * 0x10000 + rng.randrange(0x10000)
            if 0xD800 <= cp < 0xE000 or cp < 0x20:
                cp = 0x20 + cp % 0x60
            cps.append(chr(cp))
        add("random-unicode", "".join(cps))
    for _ in range(150):
        ind = rng.choice(["  ", "    ", "\t"])
        lines = []
        for d in range(rng.randint(1, 6)):
            w = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
            stmt = rng.choice(["%s = %s(%s)" % (w[0], w[-1], ", ".join(w)),
                               "if (%s != %d) {" % (w[0], rng.randrange(100)),
                               "return %s;" % "_".join(w), "def %s(%s):" % (w[0], ", ".join(w[1:])),
                               "// %s" % " ".join(w), "# %s" % " ".join(w), "}", "%s[i] += 0x%02X;" % (w[0], rng.randrange(256))])
            lines.append(ind * rng.randint(0, 3) + stmt)
        add("code", rng.choice(["\n", "\r\n"]).join(lines) + rng.choice(["", "\n"]))
    pools = [WORDS, GREEK, CYRILLIC, CJK, ACCENTED, COMBINING, EMOJI, RARE, COMPAT, PUNCT, SPACES, SPECIALISH]
    for _ in range(400):
        s = "".join(rng.choice(rng.choice(pools)) + rng.choice(["", " ", " ", "\n"]) for _ in range(rng.randint(1, 20)))
        add("mixed", s)
    return cats


# ---- output -----------------------------------------------------------------------

def write_vocab_gguf(path, sp, spec):
    n = sp.vocab_size()
    toks, scores, types = [], [], []
    for i in range(n):
        toks.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i)
                     else 6 if sp.is_byte(i) else 1)
    E, H, F = 32, 4, 32
    f = gw.Writer()
    f.add("general.architecture", gw.STRING, "llama")
    f.add("general.name", gw.STRING, "orion-tokenizer-test")
    f.add("llama.context_length", gw.U32, 64)
    f.add("llama.embedding_length", gw.U32, E)
    f.add("llama.feed_forward_length", gw.U32, F)
    f.add("llama.attention.head_count", gw.U32, H)
    f.add("llama.attention.head_count_kv", gw.U32, H)
    f.add("llama.block_count", gw.U32, 1)
    f.add("llama.rope.dimension_count", gw.U32, E // H)
    f.add("llama.attention.layer_norm_rms_epsilon", gw.F32, 1e-5)
    f.add("tokenizer.ggml.model", gw.STRING, "llama")
    f.add("tokenizer.ggml.tokens", gw.ARRAY, toks, gw.STRING)
    f.add("tokenizer.ggml.scores", gw.ARRAY, scores, gw.F32)
    f.add("tokenizer.ggml.token_type", gw.ARRAY, types, gw.I32)
    f.add("tokenizer.ggml.bos_token_id", gw.U32, sp.bos_id())
    f.add("tokenizer.ggml.eos_token_id", gw.U32, sp.eos_id())
    f.add("tokenizer.ggml.unknown_token_id", gw.U32, sp.unk_id())
    f.add("tokenizer.ggml.add_space_prefix", gw.BOOL, spec["add_dummy_prefix"])

    def zeros(ne):
        count = 1
        for d in ne:
            count *= d
        return b"\0" * (4 * count)

    f.add_tensor("token_embd.weight", [E, n], zeros([E, n]))
    f.add_tensor("output_norm.weight", [E], struct.pack("<%df" % E, *([1.0] * E)))
    for name, ne in (("attn_q", [E, E]), ("attn_k", [E, E]), ("attn_v", [E, E]), ("attn_output", [E, E]),
                     ("ffn_gate", [E, F]), ("ffn_up", [E, F]), ("ffn_down", [F, E])):
        f.add_tensor("blk.0.%s.weight" % name, ne, zeros(ne))
    for name in ("attn_norm", "ffn_norm"):
        f.add_tensor("blk.0.%s.weight" % name, [E], struct.pack("<%df" % E, *([1.0] * E)))
    f.write(path)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: spm_tokenize.py TOKENIZER_MODEL OUTDIR\n")
        return 2
    sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    spec = normalizer_spec(sp)
    if spec["name"] != "identity" or not spec["add_dummy_prefix"] or spec["remove_extra_whitespaces"]:
        # other models would need the texts normalized first (see the header)
        sys.stderr.write("spm_tokenize.py: normalizer %r: expected the Llama 2 model's "
                         "(identity, dummy prefix, whitespace kept)\n" % spec)
        return 1
    write_vocab_gguf(os.path.join(out, "vocab.gguf"), sp, spec)

    corpus = gen_corpus(random.Random(20240601))
    names = []
    for cat, _ in corpus:
        if cat not in names:
            names.append(cat)
    chunks = [struct.pack("<I", len(names))]
    for nm in names:
        b = nm.encode()
        chunks.append(struct.pack("<I", len(b)) + b)
    chunks.append(struct.pack("<I", len(corpus)))
    n_rt = 0
    for cat, text in corpus:
        ids = sp.encode(text)
        rt = sp.decode(ids) == text
        n_rt += rt
        b = text.encode("utf-8")
        ids = [sp.bos_id()] + ids
        chunks.append(struct.pack("<III", names.index(cat), int(rt), len(b)) + b +
                      struct.pack("<I%di" % len(ids), len(ids), *ids))
    with open(os.path.join(out, "corpus.bin"), "wb") as f:
        f.write(b"".join(chunks))
    print("spm_tokenize.py: %d texts in %d categories, %d round-trip through SentencePiece" % (
        len(corpus), len(names), n_rt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
