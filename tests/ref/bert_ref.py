#!/usr/bin/env python3
"""bert_ref.py - an independent PyTorch reference for orion's BERT sentence
encoder (tests/test_bert_reference.c), written from the BERT paper (Devlin et
al. 2019) and the sentence-transformers pooling description, not from
orion's code and not with the transformers library:

  h0 = LayerNorm(word[id] + position[p] + token_type[0])
  per layer (post-LN):  a = MultiHead(h) with a padding mask;  h = LN(h + a W_o + b_o)
                        h = LN(h + GELU_erf(h W_1 + b_1) W_2 + b_2)
  sentence vector = mean of h over the real tokens (or h at [CLS]), optionally
  L2-normalized.

The model has all-MiniLM-L6-v2's exact shape (6 layers, hidden 384, 12 heads,
FFN 1536, vocabulary 30522, 512 positions, 2 token types, eps 1e-12) with
seeded random weights at scales that keep activations realistic (BERT's
N(0, 0.02) init; larger word embeddings, query/key and FFN-in weights so
texts differ, attention is peaked and GELU is non-linear; LayerNorm weights
1 + noise). Mean-pooled random texts still share a large common component
(cosine ~0.93 between unrelated texts), so the test also compares vectors
with the mean over all texts removed.

Importable (the benchmark exports the same model to ONNX):
  make_model(seed)                       -> BertModel (torch.nn.Module, float32)
  save_sentence_transformers(model, dir) -> a sentence-transformers directory
  load_sentence_transformers(dir)        -> BertModel with the saved weights
  Embedder(model, pooling, normalize)    -> module: (input_ids, attention_mask) -> vectors

Command line:
  bert_ref.py make DIR [--seed S]        writes the sentence-transformers directory
  bert_ref.py embed DIR IDS OUT          IDS: int32 n, then per text int32 len + ids;
                                         OUT: float64 blocks (n, 384) each, in order:
                                         mean+normalize, mean, cls+normalize, cls
Exits 77 when torch or numpy is missing (the test then reports it).
"""
import json
import math
import os
import shutil
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError:  # pragma: no cover
    sys.stderr.write("bert_ref.py needs torch and numpy (Debian: python3-torch python3-numpy)\n")
    sys.exit(77)

CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "position_embedding_type": "absolute",
    "pad_token_id": 0,
    "initializer_range": 0.02,
    "torch_dtype": "float32",
}
MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2's sentence_bert_config.json

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("ORION_SHARED") or os.path.join(HERE, "..", "..", "..", "shared")
VOCAB_TXT = os.path.join(SHARED, "models", "bert-base-uncased", "vocab.txt")


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


class BertModel(torch.nn.Module):
    """BERT encoder; parameters named as Hugging Face's BertModel state dict."""

    def __init__(self, cfg=CONFIG):
        super().__init__()
        self.cfg = dict(cfg)
        E, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
        P, T = cfg["max_position_embeddings"], cfg["type_vocab_size"]
        self.params = {}
        shapes = {
            "embeddings.word_embeddings.weight": (V, E),
            "embeddings.position_embeddings.weight": (P, E),
            "embeddings.token_type_embeddings.weight": (T, E),
            "embeddings.LayerNorm.weight": (E,),
            "embeddings.LayerNorm.bias": (E,),
        }
        for l in range(cfg["num_hidden_layers"]):
            p = "encoder.layer.%d." % l
            for n in ("query", "key", "value"):
                shapes[p + "attention.self.%s.weight" % n] = (E, E)
                shapes[p + "attention.self.%s.bias" % n] = (E,)
            shapes[p + "attention.output.dense.weight"] = (E, E)
            shapes[p + "attention.output.dense.bias"] = (E,)
            shapes[p + "attention.output.LayerNorm.weight"] = (E,)
            shapes[p + "attention.output.LayerNorm.bias"] = (E,)
            shapes[p + "intermediate.dense.weight"] = (F, E)
            shapes[p + "intermediate.dense.bias"] = (F,)
            shapes[p + "output.dense.weight"] = (E, F)
            shapes[p + "output.dense.bias"] = (E,)
            shapes[p + "output.LayerNorm.weight"] = (E,)
            shapes[p + "output.LayerNorm.bias"] = (E,)
        self.shapes = shapes
        self.weights = torch.nn.ParameterDict()
        for name, shape in shapes.items():
            self.weights[name.replace(".", "__")] = torch.nn.Parameter(torch.zeros(shape), requires_grad=False)

    def w(self, name):
        return self.weights[name.replace(".", "__")]

    def state(self):
        """name -> float32 numpy array, in Hugging Face naming."""
        return {n: self.w(n).detach().float().numpy() for n in self.shapes}

    def forward(self, input_ids, attention_mask):
        """input_ids, attention_mask: (B, T) integer tensors. Returns the last
        hidden state (B, T, E) in the parameters' dtype."""
        cfg, w = self.cfg, self.w
        eps = cfg["layer_norm_eps"]
        B, T = input_ids.shape
        H = cfg["num_attention_heads"]
        E = cfg["hidden_size"]
        d = E // H
        pos = torch.arange(T)
        x = w("embeddings.word_embeddings.weight")[input_ids] + w("embeddings.position_embeddings.weight")[pos][None]
        x = x + w("embeddings.token_type_embeddings.weight")[0]
        x = layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
        # additive mask: padded keys get -inf-like scores
        mask = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * torch.finfo(x.dtype).min
        for l in range(cfg["num_hidden_layers"]):
            p = "encoder.layer.%d." % l

            def lin(t, n):
                return t @ w(p + n + ".weight").T + w(p + n + ".bias")

            def heads(t):
                return t.view(B, T, H, d).transpose(1, 2)  # (B, H, T, d)

            q = heads(lin(x, "attention.self.query"))
            k = heads(lin(x, "attention.self.key"))
            v = heads(lin(x, "attention.self.value"))
            s = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
            a = torch.softmax(s, dim=-1) @ v  # (B, H, T, d)
            a = a.transpose(1, 2).reshape(B, T, E)
            x = layer_norm(x + lin(a, "attention.output.dense"), w(p + "attention.output.LayerNorm.weight"),
                           w(p + "attention.output.LayerNorm.bias"), eps)
            f = lin(gelu_erf(lin(x, "intermediate.dense")), "output.dense")
            x = layer_norm(x + f, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps)
        return x


def pool(hidden, attention_mask, mode, normalize):
    """sentence-transformers' Pooling (+ Normalize): mean over the real tokens or
    the [CLS] vector."""
    if mode == "cls":
        v = hidden[:, 0]
    else:
        m = attention_mask.to(hidden.dtype)[:, :, None]
        v = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if normalize:
        v = v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return v


class Embedder(torch.nn.Module):
    """(input_ids, attention_mask) -> sentence vectors (for ONNX export)."""

    def __init__(self, model, pooling="mean", normalize=True):
        super().__init__()
        self.model, self.pooling, self.normalize = model, pooling, normalize

    def forward(self, input_ids, attention_mask):
        return pool(self.model(input_ids, attention_mask), attention_mask, self.pooling, self.normalize)


def make_model(seed=1234):
    """MiniLM-shaped BertModel with seeded random float32 weights."""
    m = BertModel(CONFIG)
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g, dtype=torch.float64) * std

    for name, shape in m.shapes.items():
        if name.endswith("LayerNorm.weight"):
            t = 1.0 + normal(shape, 0.1)
        elif name.endswith("LayerNorm.bias"):
            t = normal(shape, 0.02)
        elif "word_embeddings" in name:
            t = normal(shape, 0.05)  # words dominate the shared position/type part
        elif "token_type" in name:
            t = normal(shape, 0.01)
        elif name.endswith(".bias"):
            t = normal(shape, 0.02)
        elif ".query." in name or ".key." in name:
            t = normal(shape, 0.06)  # peaked attention: scores of std ~1.5
        elif "intermediate.dense" in name:
            t = normal(shape, 0.05)  # GELU inputs of std ~1
        else:
            t = normal(shape, 0.02)  # BERT's initializer_range
        m.w(name).data = t.float()
    return m


# ---- sentence-transformers directory -------------------------------------------------------

def write_safetensors(path, tensors):
    """tensors: name -> float32 numpy array. Written by hand (no safetensors
    package): u64 header length, JSON header, raw little-endian data."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", name
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype="<f4").reshape(t["shape"])
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def save_sentence_transformers(model, out_dir, vocab_txt=VOCAB_TXT, pooling="mean", normalize=True):
    """Writes model as a sentence-transformers directory: config.json,
    model.safetensors, vocab.txt (bert-base-uncased's), tokenizer_config.json,
    modules.json (Transformer, Pooling[, Normalize]), 1_Pooling/config.json,
    sentence_bert_config.json."""
    os.makedirs(os.path.join(out_dir, "1_Pooling"), exist_ok=True)
    write_json(os.path.join(out_dir, "config.json"), model.cfg)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), model.state())
    shutil.copyfile(vocab_txt, os.path.join(out_dir, "vocab.txt"))
    write_json(os.path.join(out_dir, "tokenizer_config.json"),
               {"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None,
                "model_max_length": 512, "tokenizer_class": "BertTokenizer",
                "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                "mask_token": "[MASK]"})
    write_json(os.path.join(out_dir, "sentence_bert_config.json"),
               {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    write_json(os.path.join(out_dir, "modules.json"), modules)
    E = model.cfg["hidden_size"]
    write_json(os.path.join(out_dir, "1_Pooling", "config.json"),
               {"word_embedding_dimension": E, "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
                "pooling_mode_lasttoken": False, "include_prompt": True})


def load_sentence_transformers(out_dir, dtype=torch.float64):
    with open(os.path.join(out_dir, "config.json")) as f:
        cfg = json.load(f)
    m = BertModel(cfg)
    st = read_safetensors(os.path.join(out_dir, "model.safetensors"))
    for name in m.shapes:
        m.w(name).data = torch.from_numpy(st[name].copy())
    return m.to(dtype)


# ---- command line -------------------------------------------------------------------------

def read_ids(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<i", data, 0)
    off, seqs = 4, []
    for _ in range(n):
        (L,) = struct.unpack_from("<i", data, off)
        off += 4
        seqs.append(list(struct.unpack_from("<%di" % L, data, off)))
        off += 4 * L
    assert off == len(data), "trailing bytes in %s" % path
    return seqs


def embed(model_dir, ids_path, out_path):
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    m = load_sentence_transformers(model_dir, torch.float64)
    seqs = read_ids(ids_path)
    E = m.cfg["hidden_size"]
    outs = [np.zeros((len(seqs), E)) for _ in range(4)]
    # batches of similar length with a padding mask (the mask is part of
    # what is being checked: each text's vector must not depend on others)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    with torch.no_grad():
        for b0 in range(0, len(order), 16):
            idx = order[b0:b0 + 16]
            T = max(len(seqs[i]) for i in idx)
            ids = torch.zeros((len(idx), T), dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.long)
            for j, i in enumerate(idx):
                ids[j, :len(seqs[i])] = torch.tensor(seqs[i])
                mask[j, :len(seqs[i])] = 1
            h = m(ids, mask)
            for k, (mode, norm) in enumerate((("mean", True), ("mean", False), ("cls", True), ("cls", False))):
                v = pool(h, mask, mode, norm).numpy()
                for j, i in enumerate(idx):
                    outs[k][i] = v[j]
    with open(out_path, "wb") as f:
        for o in outs:
            f.write(np.ascontiguousarray(o, dtype="<f8").tobytes())


def main(argv):
    if len(argv) >= 2 and argv[0] == "make":
        seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 1234
        save_sentence_transformers(make_model(seed), argv[1])
        return 0
    if len(argv) == 4 and argv[0] == "embed":
        embed(argv[1], argv[2], argv[3])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
