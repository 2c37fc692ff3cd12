"""Build the small models of tests/corpus/exporters/ with exporters other than PyTorch's.

Each model is built once and checked in: the exporters stay OUT of the test environment
(they are never installed into the project's venv, nor listed in pyproject.toml). Each
exporter lives in its own venv, because their pins clash (paddle2onnx wants onnx <= 1.17,
tf2onnx wants its own protobuf, ...). Python 3.11, one venv per exporter:

    python3.11 -m venv VENVS/skl
    VENVS/skl/bin/pip install scikit-learn==1.9.1 skl2onnx==1.20.0 onnx onnxruntime
    python3.11 -m venv VENVS/tf
    VENVS/tf/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0
    python3.11 -m venv VENVS/jax
    VENVS/jax/bin/pip install jax==0.10.2 jax2onnx==0.17.1 flax onnx
    python3.11 -m venv VENVS/paddle
    VENVS/paddle/bin/pip install paddlepaddle paddle2onnx==2.1.0 packaging \
        onnxruntime onnx_graphsurgeon sympy
    python3.11 -m venv VENVS/optimum
    VENVS/optimum/bin/pip install torch==2.13.0    # first: the CPU build
    VENVS/optimum/bin/pip install "optimum[exporters]==1.27.0" transformers==4.53.3

(the files checked in were built with flax 0.12.8 and paddlepaddle 3.3.1; manifest.json
records the versions of every file). paddle2onnx folds constants with Polygraphy, which
pip-installs onnxruntime, onnx_graphsurgeon and sympy into the running venv at export time
when they are missing (with an extra index of its own): hence they are installed above.
optimum 1.27.0 is the last optimum with the ONNX exporter inside (later ones moved it to
optimum-onnx, which no longer writes decoder_model_merged.onnx: its `legacy` option is
gone) and it predates torch 2.13: build_optimum gives it two shims (see there).
Then, from anywhere:

    python3 tests/corpus/build_exporters.py all --venvs VENVS     # every exporter
    VENVS/skl/bin/python tests/corpus/build_exporters.py sklearn  # one, in its own venv

`all` re-runs this script with each venv's python; `wheels` (run by `all` too, any
python with onnx) only rewrites the manifest entries of the models copied out of wheels.
Each build writes its .onnx files into tests/corpus/exporters/ and updates their entries
of tests/corpus/manifest.json (origin with the versions actually used, inputs and outputs
as the file declares them, feed, expected). Weights are random with a fixed seed;
training, where an exporter needs a fitted model, is a few iterations on random data.
Rebuilding with the same versions gives the same weights (tf2onnx may name some
initializers differently from one run to the next); other versions give other files.

The MLPs are 64 -> 64 -> 4 -> 64 (ReLU between; layers named hidden, squeeze, expand
where the exporter keeps names): max-flow 4, reference 64. Keras, jax and paddle also build
the same small models each (layers named as in the MLPs where the exporter keeps names):
a residual block (x [64] + Linear 4 -> 64 of Linear 64 -> 4: 64 of 64, the squeeze
bypassed), a CNN with a 1x1 squeeze (3x16x16, conv 3x3 -> 8, 1x1 -> 2, 1x1 -> 8, global
average pool, dense 10: 8 of 10, the cut at the pool), a text model (8 ids, Embedding(1000,
16), dense 64, dense 1000: 64 of 1000; keras_text_embedding for Keras), a post-LN
transformer encoder block (tokens [1, 16, 32], 4 heads of size 8, MLP 32 -> 64 -> 32: 512
of 512, an attention_head_rank finding) and a two-output model (trunk 64, head a 64 -> 4 ->
64: 4 of 64, head b 64 -> 64: 64 of 64; together 64 of 64). scikit-learn adds a
StandardScaler -> PCA(4) -> LinearRegression pipeline (4 of 64) and a small random forest
(TreeEnsembleRegressor: 1 of 1). Besides `expected`, an entry may give expected_outputs
(figures per output name), cut_layer (the framework's name of the narrowest layer on the
minimum cut nearest the inputs; the note then quotes how the file names its nodes and
weights), findings (the finding kinds the audit should report; [] for none) and
expected_whole (the figures with --whole-model, where a head is judged apart by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "exporters"
MANIFEST = HERE / "manifest.json"
SEED = 0

MLP_EXPECTED = {"max_flow": 4, "reference": 64}
CNN_EXPECTED = {"max_flow": 8, "reference": 8}
CNN_WHOLE = {"max_flow": 8, "reference": 10}
TEXT_EXPECTED = {"max_flow": 64, "reference": 64}
TEXT_WHOLE = {"max_flow": 64, "reference": 1000}
NOTE_RESIDUAL = (
    "Residual block: x [64] -> Linear 64 -> 4 (relu) -> 4 -> 64, added to x. The skip "
    "carries all 64 around the 4-wide branch: max-flow 64 of 64, no bottleneck (the "
    "squeeze is bypassed)."
)
NOTE_CNN = (
    "CNN with a 1x1 squeeze at 3x16x16: conv 3x3 3 -> 8 (same padding, stride 1, relu; "
    "2048), conv 1x1 8 -> 2 (squeeze, relu; 2x16x16 = 512), conv 1x1 2 -> 8 (expand, "
    "relu; 2048), global average pool (8), dense 8 -> 10 (logits). Input 768; the "
    "narrowest cross-section is the pool's 8 (the squeeze's 512 is wider). The dense "
    "8 -> 10 is a head (d 8 + 1 < 10): judged apart, the trunk delivers the pool's 8, "
    "max-flow 8 of 8; the whole model (--whole-model): 8 of 10, the cut at the pool."
)
NOTE_TEXT = (
    "Embedding(1000, 16) on 8 ids -> flatten (128) -> Linear 64 (relu) -> Linear "
    "1000 logits, a head judged apart (a softmax bottleneck, d 64, vocabulary 1000): the "
    "ids count as the 16 that embed each (128), the trunk ends at the head's 64-wide input: "
    "max-flow 64 of 64. The whole model (--whole-model): the ids one-hot over 1000 are 8000 "
    "wide, squeezed to 64 before the 1000 logits: 64 of 1000."
)
NOTE_TRANSFORMER = (
    "Post-LN transformer encoder block on tokens [1, 16, 32] (no embedding): self-attention "
    "with 4 heads of size 8, residual + layer norm, MLP 32 -> 64 (relu) -> 32, residual + "
    "layer norm. Every cross-section is 16 x 32 = 512 wide or wider: max-flow 512 of 512. "
    "Head size 8 < sequence 16: an attention_head_rank finding (heads 4, head_size 8, "
    "sequence 16) is expected."
)
NOTE_TWO_OUTPUTS = (
    "Two outputs: x [64] -> Linear 64 -> 64 (relu), then head a: 64 -> 4 (relu) -> 64 "
    "and head b: 64 -> 64. Per output: a 4 of 64 (cut at a's squeeze), b 64 of 64; all "
    "outputs together 64 of 64 (the 64-wide trunk; inputs 64 < outputs 128). cut_layer is "
    "the cut of output a: for all outputs together the cut nearest the inputs is the input."
)
OWN = "Apache-2.0 (built here, as the project)"


def versions(*packages: str) -> str:
    py = "Python {}.{}".format(*sys.version_info[:2])
    return ", ".join([py] + [f"{p} {metadata.version(p)}" for p in packages])


def type_string(t) -> str:
    """An ONNX type as text, e.g. seq(map(int64,tensor(float))) for ZipMap's output."""
    import onnx

    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        return f"tensor({onnx.TensorProto.DataType.Name(t.tensor_type.elem_type).lower()})"
    if kind == "sequence_type":
        return f"seq({type_string(t.sequence_type.elem_type)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(t.map_type.key_type).lower()
        return f"map({key},{type_string(t.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({type_string(t.optional_type.elem_type)})"
    return str(kind)


def describe(value_info) -> dict:
    """Name, element type and shape of a graph input or output, as the file declares it."""
    import onnx

    t = value_info.type
    kind = t.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": value_info.name, "elem_type": None, "shape": None, "type": type_string(t)}
    tt = t.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            elif d.HasField("dim_param"):
                shape.append(d.dim_param)
            else:
                shape.append("")
    return {
        "name": value_info.name,
        "elem_type": onnx.TensorProto.DataType.Name(tt.elem_type),
        "shape": shape,
    }


def entry(
    path: Path,
    origin: str,
    license_: str,
    feed: dict,
    expected,
    note: str | None = None,
    values: dict | None = None,
    *,
    expected_outputs: dict | None = None,
    cut_layer: str | None = None,
    findings: list[str] | None = None,
    expected_whole: dict | None = None,
):
    """The manifest entry of one file. The keyword-only fields are written when given:
    expected_outputs (figures per output name), cut_layer (the framework's name of the
    narrowest layer on the minimum cut nearest the inputs), findings (expected finding
    kinds; [] for none), expected_whole (the figures with --whole-model, where a head is
    judged apart by default)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    e = {
        "file": path.relative_to(HERE).as_posix(),
        "origin": origin,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "license": license_,
        "inputs": [describe(i) for i in model.graph.input if i.name not in inits],
        "outputs": [describe(o) for o in model.graph.output],
        "feed": feed,
        "expected": expected,
    }
    if expected_outputs is not None:
        e["expected_outputs"] = expected_outputs
    if expected_whole is not None:
        e["expected_whole"] = expected_whole
    if cut_layer is not None:
        e["cut_layer"] = cut_layer
        note = f"{note.rstrip('.')}. {names_in(model)}" if note else names_in(model)
    if findings is not None:
        e["findings"] = findings
    if note:
        e["note"] = note
    if values:
        e["values"] = values  # --input-value: the branch of an If users take
    return e


#: The ops a layer of the audit's figures is made of, for the names a note quotes.
LAYER_OPS = ("MatMul", "Gemm", "Conv", "GlobalAveragePool", "ReduceMean", "Gather",
             "LinearRegressor", "TreeEnsembleRegressor")  # fmt: skip


def names_in(model, most: int = 6) -> str:
    """How the file names its layers: node name, op type and the weight read, for the
    first nodes of LAYER_OPS (the naming rule to check against cut_layer)."""
    weights = {i.name for i in model.graph.initializer if len(i.dims) >= 2}
    shown = []
    for node in model.graph.node:
        if node.op_type in LAYER_OPS and len(shown) < most:
            read = [i for i in node.input if i in weights]
            shown.append(f"{node.name} {node.op_type}" + (f" <- {read[0]}" if read else ""))
    return "Names in the file (node op <- weight): " + "; ".join(shown) + "."


def update_manifest(entries: list[dict]) -> None:
    data = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"files": []}
    by_file = {e["file"]: e for e in data["files"]}
    for e in entries:
        by_file[e["file"]] = e
    data["files"] = sorted(by_file.values(), key=lambda e: e["file"])
    MANIFEST.write_text(json.dumps(data, indent=2) + "\n")
    for e in entries:
        print("wrote", e["file"])


# --------------------------------------------------------------------------- sklearn


def build_sklearn() -> list[dict]:
    import warnings

    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((256, 64)).astype(np.float32)
    y = rng.standard_normal((256, 64)).astype(np.float32)
    labels = rng.integers(0, 10, 256)
    types = [("input", FloatTensorType([None, 64]))]
    origin = "skl2onnx, " + versions("scikit-learn", "skl2onnx", "onnx")
    feed = {"input": [1, 64]}
    built = []

    def export(fitted, name: str, expected: dict, note: str, **fields) -> None:
        path = OUT / name
        model = to_onnx(fitted, initial_types=types)
        # skl2onnx lists the opsets in no fixed order: the default domain first, as checked in.
        opsets = sorted(
            model.opset_import, key=lambda o: (o.domain not in ("", "ai.onnx"), o.domain)
        )
        del model.opset_import[:]
        model.opset_import.extend(opsets)
        path.write_bytes(model.SerializeToString())
        built.append(entry(path, origin, OWN, feed, expected, note, findings=[], **fields))

    export(
        MLPRegressor(hidden_layer_sizes=(64, 4, 64), max_iter=5, random_state=SEED).fit(x, y),
        "sklearn_mlp_regressor.onnx",
        MLP_EXPECTED,
        "MLPRegressor(hidden_layer_sizes=(64, 4, 64)), 64 -> 64. skl2onnx "
        "ends with Reshape(-1, 1) and declares the output [N, 1]: one sample "
        "of 64 outputs comes out as [64, 1].",
    )
    export(
        MLPClassifier(hidden_layer_sizes=(64, 4, 64), max_iter=5, random_state=SEED).fit(x, labels),
        "sklearn_mlp_classifier_zipmap.onnx",
        {"max_flow": 1, "reference": 1},
        "MLPClassifier(hidden_layer_sizes=(64, 4, 64)), 10 classes, default ZipMap: the "
        "probabilities output is a sequence of maps (not a tensor: listed as unknown); "
        "the label output, one int64 per sample, is what the flow delivers: 1 of 1.",
    )
    export(
        make_pipeline(
            StandardScaler(),
            MLPRegressor(hidden_layer_sizes=(64, 4, 64), max_iter=5, random_state=SEED),
        ).fit(x, y),
        "sklearn_scaler_mlp_regressor.onnx",
        MLP_EXPECTED,
        "Pipeline StandardScaler (ai.onnx.ml Scaler) -> "
        "MLPRegressor((64, 4, 64)); output Reshape(-1, 1) as in "
        "sklearn_mlp_regressor.onnx: one sample comes out as [64, 1].",
    )
    export(
        make_pipeline(StandardScaler(), PCA(n_components=4), LinearRegression()).fit(x, y),
        "sklearn_pca_linear_regression.onnx",
        MLP_EXPECTED,
        "Pipeline StandardScaler (standardscaler) -> PCA(n_components=4) (pca) -> "
        "LinearRegression (linearregression) with 64 targets: 64 -> 4 -> 64, max-flow 4 of "
        "64, the cut at the PCA projection.",
        cut_layer="pca",
    )
    export(
        RandomForestRegressor(n_estimators=3, max_depth=3, random_state=SEED).fit(x, y[:, 0]),
        "sklearn_random_forest_regressor.onnx",
        {"max_flow": 1, "reference": 1},
        "RandomForestRegressor(n_estimators=3, max_depth=3) on 64 features, one target: one "
        "ai.onnx.ml tree ensemble op (every tree reads the 64 features) writes one value "
        "per sample: max-flow 1 of 1 (reference min(64, 1)). skl2onnx 1.20.0 lists the "
        "default opset twice in this file (opset_import '' 22, '' 22, ai.onnx.ml 1).",
    )
    return built


# --------------------------------------------------------------------------- keras


def build_keras() -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(SEED)
    origin = "tf2onnx.convert.from_keras, " + versions("tensorflow-cpu", "keras", "tf2onnx", "onnx")
    built = []

    def export(model, name: str, spec, feed: dict, expected, note: str, **fields) -> None:
        path = OUT / name
        tf2onnx.convert.from_keras(model, input_signature=(spec,), opset=17, output_path=str(path))
        built.append(entry(path, origin, OWN, feed, expected, note, **fields))

    # Keras 3 functional API: tf2onnx does not convert a Sequential model.
    x = keras.Input(shape=(64,), name="x")
    h = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    s = keras.layers.Dense(4, activation="relu", name="squeeze")(h)
    y = keras.layers.Dense(64, name="expand")(s)
    export(
        keras.Model(x, y, name="mlp"),
        "keras_mlp.onnx",
        tf.TensorSpec((None, 64), tf.float32, name="x"),
        {"x": [1, 64]},
        MLP_EXPECTED,
        "Keras functional Dense 64 (hidden) -> 4 (squeeze) -> 64 (expand)",
        cut_layer="squeeze",
        findings=[],
    )

    ids = keras.Input(shape=(8,), dtype="int32", name="ids")
    e = keras.layers.Embedding(1000, 16, name="embed")(ids)
    f = keras.layers.Flatten(name="flatten")(e)
    h = keras.layers.Dense(64, activation="relu", name="hidden")(f)
    logits = keras.layers.Dense(1000, name="logits")(h)
    export(
        keras.Model(ids, logits, name="text"),
        "keras_text_embedding.onnx",
        tf.TensorSpec((None, 8), tf.int32, name="ids"),
        {"ids": [1, 8]},
        TEXT_EXPECTED,
        "Embedding(1000, 16) on 8 int32 ids -> Flatten -> Dense 64 (relu) -> Dense 1000 "
        "logits, a head judged apart: the trunk ends at its 64-wide input, 64 of 64. The "
        "whole model: the ids one-hot over 1000 are 8000 wide; squeezed to 64 before the "
        "1000 logits.",
        cut_layer="hidden",
        findings=["softmax_bottleneck"],
        expected_whole=TEXT_WHOLE,
    )

    x = keras.Input(shape=(64,), name="x")
    s = keras.layers.Dense(4, activation="relu", name="squeeze")(x)
    y = keras.layers.Dense(64, name="expand")(s)
    export(
        keras.Model(x, keras.layers.Add(name="add")([x, y]), name="residual"),
        "keras_residual.onnx",
        tf.TensorSpec((None, 64), tf.float32, name="x"),
        {"x": [1, 64]},
        {"max_flow": 64, "reference": 64},
        NOTE_RESIDUAL + " Keras: Dense squeeze, expand, Add add.",
        findings=[],
    )

    x = keras.Input(shape=(16, 16, 3), name="x")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    h = keras.layers.Conv2D(2, 1, activation="relu", name="squeeze")(h)
    h = keras.layers.Conv2D(8, 1, activation="relu", name="expand")(h)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    export(
        keras.Model(x, keras.layers.Dense(10, name="logits")(h), name="cnn"),
        "keras_cnn_squeeze.onnx",
        tf.TensorSpec((None, 16, 16, 3), tf.float32, name="x"),
        {"x": [1, 16, 16, 3]},
        CNN_EXPECTED,
        NOTE_CNN + " Keras, NHWC input 16x16x3: Conv2D conv, squeeze, expand, "
        "GlobalAveragePooling2D pool, Dense logits (the output, named logits: a "
        "softmax_bottleneck, d 8 + 1 < 10).",
        cut_layer="pool",
        findings=["softmax_bottleneck"],
        expected_whole=CNN_WHOLE,
    )

    tokens = keras.Input(shape=(16, 32), name="tokens")
    a = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, name="attention")(tokens, tokens)
    h = keras.layers.LayerNormalization(name="norm1")(keras.layers.Add(name="add1")([tokens, a]))
    f = keras.layers.Dense(64, activation="relu", name="ffn_up")(h)
    f = keras.layers.Dense(32, name="ffn_down")(f)
    y = keras.layers.LayerNormalization(name="norm2")(keras.layers.Add(name="add2")([h, f]))
    export(
        keras.Model(tokens, y, name="encoder"),
        "keras_transformer_block.onnx",
        tf.TensorSpec((None, 16, 32), tf.float32, name="tokens"),
        {"tokens": [1, 16, 32]},
        {"max_flow": 512, "reference": 512},
        NOTE_TRANSFORMER + " Keras: MultiHeadAttention(num_heads=4, key_dim=8) attention, "
        "Add add1, LayerNormalization norm1, Dense ffn_up, ffn_down, Add add2, "
        "LayerNormalization norm2.",
        findings=["attention_head_rank"],
    )

    x = keras.Input(shape=(64,), name="x")
    h = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    s = keras.layers.Dense(4, activation="relu", name="a_squeeze")(h)
    a = keras.layers.Dense(64, name="a")(s)
    b = keras.layers.Dense(64, name="b")(h)
    export(
        keras.Model(x, [a, b], name="two_heads"),
        "keras_two_outputs.onnx",
        tf.TensorSpec((None, 64), tf.float32, name="x"),
        {"x": [1, 64]},
        {"max_flow": 64, "reference": 64},
        NOTE_TWO_OUTPUTS + " Keras: Dense hidden, a_squeeze, a (output a), b (output b).",
        expected_outputs={"a": MLP_EXPECTED, "b": {"max_flow": 64, "reference": 64}},
        cut_layer="a_squeeze",
        findings=[],
    )
    return built


# --------------------------------------------------------------------------- jax


def build_jax() -> list[dict]:
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from jax2onnx import to_onnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.hidden = nnx.Linear(64, 64, rngs=rngs)
            self.squeeze = nnx.Linear(64, 4, rngs=rngs)
            self.expand = nnx.Linear(4, 64, rngs=rngs)

        def __call__(self, x):
            return self.expand(nnx.relu(self.squeeze(nnx.relu(self.hidden(x)))))

    class Residual(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.squeeze = nnx.Linear(64, 4, rngs=rngs)
            self.expand = nnx.Linear(4, 64, rngs=rngs)

        def __call__(self, x):
            return x + self.expand(nnx.relu(self.squeeze(x)))

    class CNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.conv = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=rngs)
            self.squeeze = nnx.Conv(8, 2, (1, 1), rngs=rngs)
            self.expand = nnx.Conv(2, 8, (1, 1), rngs=rngs)
            self.logits = nnx.Linear(8, 10, rngs=rngs)

        def __call__(self, x):  # NHWC
            h = nnx.relu(self.expand(nnx.relu(self.squeeze(nnx.relu(self.conv(x))))))
            return self.logits(jnp.mean(h, axis=(1, 2)))

    class Text(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.embed = nnx.Embed(1000, 16, rngs=rngs)
            self.hidden = nnx.Linear(8 * 16, 64, rngs=rngs)
            self.logits = nnx.Linear(64, 1000, rngs=rngs)

        def __call__(self, ids):
            e = self.embed(ids)
            return self.logits(nnx.relu(self.hidden(e.reshape(e.shape[0], -1))))

    class Encoder(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.attention = nnx.MultiHeadAttention(
                num_heads=4, in_features=32, qkv_features=32, decode=False, rngs=rngs
            )
            self.norm1 = nnx.LayerNorm(32, rngs=rngs)
            self.ffn_up = nnx.Linear(32, 64, rngs=rngs)
            self.ffn_down = nnx.Linear(64, 32, rngs=rngs)
            self.norm2 = nnx.LayerNorm(32, rngs=rngs)

        def __call__(self, x):
            h = self.norm1(x + self.attention(x))
            return self.norm2(h + self.ffn_down(nnx.relu(self.ffn_up(h))))

    class TwoHeads(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.hidden = nnx.Linear(64, 64, rngs=rngs)
            self.a_squeeze = nnx.Linear(64, 4, rngs=rngs)
            self.a = nnx.Linear(4, 64, rngs=rngs)
            self.b = nnx.Linear(64, 64, rngs=rngs)

        def __call__(self, x):
            h = nnx.relu(self.hidden(x))
            return self.a(nnx.relu(self.a_squeeze(h))), self.b(h)

    origin = "jax2onnx.to_onnx, " + versions("jax", "flax", "jax2onnx", "onnx")
    assert jax.__version__
    built = []

    def export(model, name: str, inputs, feed: dict, expected, note: str, **fields) -> None:
        path = OUT / name
        names = {k: fields.pop(k) for k in ("input_names", "output_names") if k in fields}
        proto = to_onnx(model, inputs, model_name=path.stem, **names)
        path.write_bytes(proto.SerializeToString())
        built.append(entry(path, origin, OWN, feed, expected, note, **fields))

    export(
        MLP(nnx.Rngs(SEED)),
        "jax_nnx_mlp.onnx",
        [("B", 64)],
        {"in_0": [1, 64]},
        MLP_EXPECTED,
        "Flax NNX Linear 64 (hidden) -> 4 (squeeze) -> 64 (expand), batch dim 'B'",
        cut_layer="squeeze",
        findings=[],
    )
    # The models below name their inputs and outputs (input_names, output_names);
    # jax2onnx's own names are in_0 ... and out_0 ... (jax_nnx_mlp.onnx).
    export(
        Residual(nnx.Rngs(SEED)),
        "jax_nnx_residual.onnx",
        [("B", 64)],
        {"x": [1, 64]},
        {"max_flow": 64, "reference": 64},
        NOTE_RESIDUAL + " Flax NNX: Linear squeeze, expand; batch dim 'B'.",
        findings=[],
        input_names=["x"],
        output_names=["y"],
    )
    export(
        CNN(nnx.Rngs(SEED)),
        "jax_nnx_cnn_squeeze.onnx",
        [("B", 16, 16, 3)],
        {"x": [1, 16, 16, 3]},
        CNN_EXPECTED,
        NOTE_CNN + " Flax NNX, NHWC input 16x16x3: Conv conv, squeeze, expand, jnp.mean "
        "over H and W (no layer: hence no cut_layer), Linear logits; output named logits "
        "(output_names): a softmax_bottleneck, d 8 + 1 < 10.",
        findings=["softmax_bottleneck"],
        expected_whole=CNN_WHOLE,
        input_names=["x"],
        output_names=["logits"],
    )
    batch = jax.export.symbolic_shape("B")[0]
    export(
        Text(nnx.Rngs(SEED)),
        "jax_nnx_text_embedding.onnx",
        [jax.ShapeDtypeStruct((batch, 8), jnp.int32)],
        {"ids": [1, 8]},
        TEXT_EXPECTED,
        NOTE_TEXT
        + " Flax NNX, int32 ids: Embed embed, reshape, Linear hidden, logits; output named logits.",
        cut_layer="hidden",
        findings=["softmax_bottleneck"],
        expected_whole=TEXT_WHOLE,
        input_names=["ids"],
        output_names=["logits"],
    )
    export(
        Encoder(nnx.Rngs(SEED)),
        "jax_nnx_transformer_block.onnx",
        [("B", 16, 32)],
        {"tokens": [1, 16, 32]},
        {"max_flow": 512, "reference": 512},
        NOTE_TRANSFORMER + " Flax NNX: MultiHeadAttention(num_heads=4, in_features=32, "
        "qkv_features=32) attention, LayerNorm norm1, Linear ffn_up, ffn_down, LayerNorm norm2.",
        findings=["attention_head_rank"],
        input_names=["tokens"],
        output_names=["y"],
    )
    export(
        TwoHeads(nnx.Rngs(SEED)),
        "jax_nnx_two_outputs.onnx",
        [("B", 64)],
        {"x": [1, 64]},
        {"max_flow": 64, "reference": 64},
        NOTE_TWO_OUTPUTS + " Flax NNX: Linear hidden, a_squeeze, a (output a), b (output b).",
        expected_outputs={"a": MLP_EXPECTED, "b": {"max_flow": 64, "reference": 64}},
        cut_layer="a_squeeze",
        findings=[],
        input_names=["x"],
        output_names=["a", "b"],
    )
    return built


# --------------------------------------------------------------------------- paddle


def build_paddle() -> list[dict]:
    import paddle
    from paddle import nn

    paddle.seed(SEED)
    origin = "paddle.onnx.export, " + versions("paddlepaddle", "paddle2onnx", "onnx")
    built = []

    class MLP(nn.Layer):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(64, 64)
            self.squeeze = nn.Linear(64, 4)
            self.expand = nn.Linear(4, 64)

        def forward(self, x):
            return self.expand(nn.functional.relu(self.squeeze(nn.functional.relu(self.hidden(x)))))

    class ConvNet(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2D(3, 8, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2D(8, 16, 3, stride=2, padding=1)
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = nn.functional.relu(self.conv1(x))
            x = nn.functional.relu(self.conv2(x))
            return self.fc(paddle.flatten(self.pool(x), 1))

    class Residual(nn.Layer):
        def __init__(self):
            super().__init__()
            self.squeeze = nn.Linear(64, 4)
            self.expand = nn.Linear(4, 64)

        def forward(self, x):
            return x + self.expand(nn.functional.relu(self.squeeze(x)))

    class CNN(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 8, 3, padding=1)
            self.squeeze = nn.Conv2D(8, 2, 1)
            self.expand = nn.Conv2D(2, 8, 1)
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.logits = nn.Linear(8, 10)

        def forward(self, x):
            x = nn.functional.relu(self.conv(x))
            x = nn.functional.relu(self.expand(nn.functional.relu(self.squeeze(x))))
            return self.logits(paddle.flatten(self.pool(x), 1))

    class Text(nn.Layer):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(1000, 16)
            self.hidden = nn.Linear(8 * 16, 64)
            self.logits = nn.Linear(64, 1000)

        def forward(self, ids):
            h = nn.functional.relu(self.hidden(paddle.flatten(self.embed(ids), 1)))
            return self.logits(h)

    class TwoHeads(nn.Layer):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(64, 64)
            self.a_squeeze = nn.Linear(64, 4)
            self.a = nn.Linear(4, 64)
            self.b = nn.Linear(64, 64)

        def forward(self, x):
            h = nn.functional.relu(self.hidden(x))
            return self.a(nn.functional.relu(self.a_squeeze(h))), self.b(h)

    def x_spec(*shape: int | None, dtype: str = "float32", name: str = "x"):
        return [paddle.static.InputSpec([None, *shape], dtype, name)]

    # paddle names each layer (and the weights it holds: linear_1.w_0, linear_1.b_0) with
    # a counter per layer type, in the order the layers are built: the order below.
    mlp, convnet, residual, cnn, text = MLP(), ConvNet(), Residual(), CNN(), Text()
    encoder = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0)
    two_heads = TwoHeads()
    specs = {
        "paddle_mlp": (
            mlp,
            x_spec(64),
            {"x": [1, 64]},
            MLP_EXPECTED,
            "paddle.nn Linear 64 (hidden) -> 4 (squeeze) -> 64 (expand)",
            {"cut_layer": mlp.squeeze.full_name(), "findings": []},
        ),
        "paddle_convnet": (
            convnet,
            x_spec(3, None, None),
            {"x": [1, 3, 32, 32]},
            {"max_flow": 10, "reference": 10},
            "Conv2D 3->8 s2, Conv2D 8->16 s2, AdaptiveAvgPool2D(1), Linear 16->10; "
            "InputSpec [None, 3, None, None], which paddle2onnx 2.1 declares "
            "with the names DynamicDimension.0/1/2 (older paddle2onnx wrote -1 "
            "and '?', see wheels/ch_ppocr_mobile_v2.0_cls_infer.onnx). At "
            "1x3x32x32: 3072 in, 10 out, nothing narrower than 10 (16 after "
            "the pool).",
            {"findings": []},
        ),
        "paddle_residual": (
            residual,
            x_spec(64),
            {"x": [1, 64]},
            {"max_flow": 64, "reference": 64},
            NOTE_RESIDUAL + f" paddle.nn Linear squeeze ({residual.squeeze.full_name()}), "
            f"expand ({residual.expand.full_name()}).",
            {"findings": []},
        ),
        "paddle_cnn_squeeze": (
            cnn,
            x_spec(3, 16, 16),
            {"x": [1, 3, 16, 16]},
            CNN_EXPECTED,
            NOTE_CNN + f" paddle.nn, NCHW input 3x16x16: Conv2D conv ({cnn.conv.full_name()}), "
            f"squeeze ({cnn.squeeze.full_name()}), expand ({cnn.expand.full_name()}), "
            f"AdaptiveAvgPool2D(1) pool ({cnn.pool.full_name()}, no weight), flatten, Linear "
            f"logits ({cnn.logits.full_name()}). The output is not named as logits "
            "(paddle2onnx names it fetch_name_0) and nothing reads it, but the Linear reads "
            "globally pooled features and gives one score per class: a softmax_bottleneck.",
            {
                "cut_layer": cnn.pool.full_name(),
                "findings": ["softmax_bottleneck"],
                "expected_whole": CNN_WHOLE,
            },
        ),
        "paddle_text_embedding": (
            text,
            x_spec(8, dtype="int64", name="ids"),
            {"ids": [1, 8]},
            TEXT_EXPECTED,
            NOTE_TEXT + f" paddle.nn, int64 ids: Embedding embed ({text.embed.full_name()}), "
            f"flatten, Linear hidden ({text.hidden.full_name()}), logits "
            f"({text.logits.full_name()}).",
            {
                "cut_layer": text.hidden.full_name(),
                "findings": ["softmax_bottleneck"],
                "expected_whole": TEXT_WHOLE,
            },
        ),
        "paddle_transformer_block": (
            encoder,
            x_spec(16, 32, name="tokens"),
            {"tokens": [1, 16, 32]},
            {"max_flow": 512, "reference": 512},
            NOTE_TRANSFORMER + " paddle.nn.TransformerEncoderLayer(d_model=32, nhead=4, "
            "dim_feedforward=64, dropout=0.0), post-LN (normalize_before=False), relu: "
            + ", ".join(f"{n} {p.name}" for n, p in encoder.named_parameters()),
            {"findings": ["attention_head_rank"]},
        ),
        "paddle_two_outputs": (
            two_heads,
            x_spec(64),
            {"x": [1, 64]},
            {"max_flow": 64, "reference": 64},
            NOTE_TWO_OUTPUTS
            + " paddle.nn Linear "
            + ", ".join(
                f"{n} ({getattr(two_heads, n).full_name()})"
                for n in ("hidden", "a_squeeze", "a", "b")
            )
            + "; paddle2onnx names the outputs fetch_name_0 (a) and fetch_name_1 (b).",
            {
                "expected_outputs": {
                    "fetch_name_0": MLP_EXPECTED,
                    "fetch_name_1": {"max_flow": 64, "reference": 64},
                },
                "cut_layer": two_heads.a_squeeze.full_name(),
                "findings": [],
            },
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (layer, spec, feed, expected, note, fields) in specs.items():
            layer.eval()
            prefix = os.path.join(tmp, name)
            paddle.onnx.export(layer, prefix, input_spec=spec, opset_version=13)
            path = OUT / f"{name}.onnx"
            path.write_bytes(Path(prefix + ".onnx").read_bytes())
            built.append(entry(path, origin, OWN, feed, expected, note, **fields))
    return built


# --------------------------------------------------------------------------- optimum


def build_optimum() -> list[dict]:
    """GPT-2 with KV cache as optimum exports it merged: one If on use_cache_branch."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # the model is built here from a config: no hub
    import functools

    import torch
    import torch.onnx.symbolic_opset14 as opset14
    import transformers
    from torch.onnx._internal.torchscript_exporter import symbolic_opset14 as ts_opset14

    # Two shims for optimum 1.27 on torch 2.13. (1) optimum imports private helpers of
    # torch.onnx.symbolic_opset14, which torch 2.13 keeps only in the TorchScript
    # exporter's module. (2) torch.onnx.export now defaults to dynamo=True (needs
    # onnxscript); optimum 1.27 was written for the TorchScript exporter.
    for name in ("_attention_scale", "_causal_attention_mask", "_onnx_symbolic",
                 "_type_utils", "jit_utils", "symbolic_helper"):  # fmt: skip
        if not hasattr(opset14, name):
            setattr(opset14, name, getattr(ts_opset14, name))
    torch.onnx.export = functools.partial(torch.onnx.export, dynamo=False)
    from optimum.exporters.onnx import main_export

    torch.manual_seed(SEED)
    config = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=1000, n_positions=64
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    origin = (
        "optimum.exporters.onnx.main_export(task='text-generation-with-past', legacy=True), "
        + versions("torch", "transformers", "optimum", "onnx", "onnxruntime")
    )
    path = OUT / "optimum_gpt2_decoder_merged.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(os.path.join(tmp, "gpt2"))
        # legacy=True: decoder_model.onnx (no cache) and decoder_with_past_model.onnx,
        # merged by optimum into decoder_model_merged.onnx; only the merged one is kept.
        main_export(
            os.path.join(tmp, "gpt2"),
            output=os.path.join(tmp, "onnx"),
            task="text-generation-with-past",
            device="cpu",
            legacy=True,
        )
        path.write_bytes(Path(tmp, "onnx", "decoder_model_merged.onnx").read_bytes())
    past = [1, 2, 8, 16]
    feed = {"input_ids": [1, 1], "attention_mask": [1, 9]}
    feed.update({f"past_key_values.{i}.{kv}": past for i in range(2) for kv in ("key", "value")})
    feed["use_cache_branch"] = [1]
    return [
        entry(
            path,
            origin,
            OWN,
            feed,
            None,
            "Tiny GPT-2 (GPT2Config n_layer=2, n_embd=32, n_head=2, vocab_size=1000, "
            "n_positions=64; random weights, seed 0), decoder_model_merged.onnx of optimum's "
            "legacy export: the whole graph is one If on use_cache_branch (bool [1]), "
            "else_branch = the decoder without cache, then_branch = the decoder with cache; "
            "weights shared by the two branches are outer-scope initializers. The feed is a "
            "step with cache (the audit takes positive sizes only): one new token "
            "(input_ids [1, 1]), past_key_values.{0,1}.{key,value} [batch, heads 2, "
            "past_sequence_length 8, head_dim 16], attention_mask [1, 9], use_cache_branch "
            "True (--input-value use_cache_branch=true follows the then_branch). The first "
            "step, as optimum's ORTModelForCausalLM feeds it, has 8 tokens and an empty past "
            "[1, 2, 0, 16]. No position_ids input (legacy export). The present.* outputs are "
            "declared [batch_size, 2, 'past_sequence_length + 1', 16], which holds only for one "
            "new token with cache. Logits: [batch_size, sequence_length, 1000].",
            values={"use_cache_branch": [1]},
        )
    ]


# --------------------------------------------------------------------------- wheels

# The models of tests/corpus/wheels/ are not built: they are copied out of PyPI wheels
# (`pip download --no-deps PKG==VERSION`, unzip, copy; see README.md). `wheels` only
# (re)writes their manifest entries from the files; any python with onnx runs it.
_R = "rapidocr-onnxruntime 1.4.4 (PyPI wheel rapidocr_onnxruntime-1.4.4-py3-none-any.whl), "
_S = "silero-vad 6.2.3 (PyPI wheel silero_vad-6.2.3-py3-none-any.whl), "
_M = "magika 1.0.3 (PyPI wheel magika-1.0.3-py3-none-manylinux_2_28_x86_64.whl), "
WHEELS = [
    (
        "ch_PP-OCRv4_det_infer.onnx",
        _R + "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx; PaddleOCR PP-OCRv4 text "
        "detector (DBNet, MobileNetV3 backbone), exported by paddle2onnx",
        "Apache-2.0",
        {"x": [1, 3, 640, 640]},
        None,
        "rapidocr resizes so that both sides are multiples of 32 (side limit 736); 640x640 is a "
        "typical feed. The output is the 1-channel text probability map at input resolution.",
    ),
    (
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        _R + "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx; PaddleOCR "
        "text-line direction classifier (0 or 180 degrees), exported by paddle2onnx",
        "Apache-2.0",
        {"x": [1, 3, 48, 192]},
        None,
        "rapidocr feeds cls_image_shape [3, 48, 192]. Height and width are declared with the "
        "same dim_param '?', and the batch as -1.",
    ),
    (
        "magika_standard_v3_3.onnx",
        _M + "magika/models/standard_v3_3/model.onnx; file content-type classifier (JAX via "
        "jax2tf, then tf2onnx 1.16.1)",
        "Apache-2.0",
        {"bytes": [1, 2048]},
        None,
        "Input: 2048 int32 byte values (beginning, middle and end of the file, padded); output: "
        "scores of 214 content types.",
    ),
    (
        "silero_vad.onnx",
        _S + "silero_vad/data/silero_vad.onnx; voice activity detector written with spox: an If "
        "on sr (8 kHz or 16 kHz) holds the network in its branches",
        "MIT",
        {"input": [1, 512], "state": [2, 1, 128], "sr": []},
        None,
        "sr is an int64 scalar (16000: chunks of 512 samples; 8000: 256): --input-value "
        "sr=16000 follows the If's then_branch, which the audit then sees layer by layer. The "
        "batch and sequence dims have neither value nor name.",
    ),
    (
        "silero_vad_16k_op15.onnx",
        _S + "silero_vad/data/silero_vad_16k_op15.onnx; voice activity detector, torch.onnx "
        "(PyTorch 2.3.1), opset 15",
        "MIT",
        {"input": [1, 512], "state": [2, 1, 128], "sr": []},
        None,
        "sr is an int64 scalar (16000).",
    ),
    (
        "silero_vad_16k_sequence.onnx",
        _S + "silero_vad/data/silero_vad_16k_sequence.onnx; voice activity detector over a "
        "sequence of windows, torch.onnx (PyTorch 2.11.0)",
        "MIT",
        {"input": [1, 576], "h": [1, 1, 128], "c": [1, 1, 128]},
        None,
        "Axis 0 of input counts the windows (each 512 new samples + 64 of context).",
    ),
    (
        "silero_vad_half.onnx",
        _S + "silero_vad/data/silero_vad_half.onnx; voice activity detector, torch.onnx "
        "(PyTorch 2.3.1), 12 If nodes (from traced shape checks)",
        "MIT",
        {"input": [1, 512], "state": [2, 1, 128]},
        None,
        "16 kHz only (no sr input). Despite the name, every weight is float32 (no float16 "
        "tensor or Cast to float16 in the file).",
    ),
    (
        "silero_vad_op18_ifless.onnx",
        _S + "silero_vad/data/silero_vad_op18_ifless.onnx; voice activity detector, torch.onnx "
        "dynamo exporter (PyTorch 2.9.0), opset 18: one If on sr (the 16 kHz or the 8 kHz "
        "model), each branch's LSTM cell written out as Gemm, Split, Sigmoid and Tanh",
        "MIT",
        {"input": [1, 576], "sr": [], "state": [2, 1, 128]},
        {"max_flow": 256, "reference": 257},
        "Two outputs, no bottleneck. At 16 kHz silero's OnnxWrapper feeds 576 samples (512 new "
        "+ 64 of context) and sr=16000, which decides the If (its then_branch). Its LSTM cell: "
        "gates = Gemm(x, weight_ih) + Gemm(h, weight_hh) (512 wide), Split into four 128-wide "
        "gates; c' = sigmoid(f) * c + sigmoid(i) * tanh(g) (add_177), h' = sigmoid(o) * "
        "tanh(c') (mul_182); stateN = stack(h', c') [2, 1, 128] = 256; output = "
        "mean(sigmoid(Conv 128 -> 1 of relu(h'))) [1, 1] = 1. Per output: output 1 of 1; "
        "stateN 256 of 256 (h and c of the state input reach h' and c' through 128-wide "
        "tensors each). All outputs together: 256 of 257 (min(576 + 1 + 256, 1 + 256)): both "
        "outputs are functions of h' and c', so the speech probability adds no value to the "
        "state handed on. No output has a bottleneck: the model passes.",
    ),
    (
        "silero_vad_openvino_16k.onnx",
        _S + "silero_vad/data/silero_vad_openvino_16k.onnx; voice activity detector with static "
        "shapes, written with spox",
        "MIT",
        {"input": [1, 576], "state": [2, 1, 128]},
        None,
        "All shapes are static.",
    ),
]


def build_wheels() -> list[dict]:
    return [
        entry(
            HERE / "wheels" / f,
            origin,
            lic,
            feed,
            expected,
            note,
            WHEEL_VALUES.get(f),
            expected_outputs=WHEEL_OUTPUTS.get(f),
        )
        for f, origin, lic, feed, expected, note in WHEELS
    ]


#: The input values users feed that decide an If (--input-value).
WHEEL_VALUES = {
    "silero_vad.onnx": {"sr": [16000]},
    "silero_vad_op18_ifless.onnx": {"sr": [16000]},
}
#: The figures per output, derived by hand (see each entry's note).
WHEEL_OUTPUTS = {
    "silero_vad_op18_ifless.onnx": {
        "output": {"max_flow": 1, "reference": 1},
        "stateN": {"max_flow": 256, "reference": 256},
    },
}


BUILDERS = {
    "sklearn": build_sklearn,
    "keras": build_keras,
    "jax": build_jax,
    "paddle": build_paddle,
    "optimum": build_optimum,
    "wheels": build_wheels,
}
VENV_OF = {
    "sklearn": "skl",
    "keras": "tf",
    "jax": "jax",
    "paddle": "paddle",
    "optimum": "optimum",
    "wheels": "skl",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exporter", choices=[*BUILDERS, "all"])
    parser.add_argument(
        "--venvs",
        default="/work/exporter-venvs",
        help="folder holding one venv per exporter (for 'all')",
    )
    args = parser.parse_args()
    if args.exporter == "all":
        failed = []
        for name, venv in VENV_OF.items():
            python = Path(args.venvs) / venv / "bin" / "python"
            print(f"== {name} ({python})", flush=True)
            if subprocess.run([str(python), __file__, name]).returncode:
                failed.append(name)
        if failed:
            print("failed:", ", ".join(failed), file=sys.stderr)
        return 1 if failed else 0
    OUT.mkdir(exist_ok=True)
    update_manifest(BUILDERS[args.exporter]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
