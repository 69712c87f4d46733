"""The ONNX Runtime backends: backend choice, the per-machine cache, and (slow) the exported model
against the torch reference."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loader import onnx_backend
from loader.embedding import (
    BACKENDS,
    CPU_DEFAULT_BACKEND,
    BackendError,
    ModelUnavailableError,
    SentenceTransformerEmbedder,
    bundled_model_path,
    check_backend,
    load_embedder,
)
from loader.onnx_backend import (
    MANIFEST,
    MODEL_FILE,
    TOKENIZER_FILE,
    OnnxCacheError,
    OnnxEmbedder,
    QuantOptions,
    UnsupportedModelError,
    cache_key,
    ensure_cached,
    has_int8_dot_product,
    pipeline_config,
    read_cache,
)
from loader.records import Embedder

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"

TEXTS = [
    "Can I bring my cat in the cabin?",
    "Small cats and dogs may travel in the cabin in a carrier under the seat.",
    "Refunds are paid to the original form of payment within seven days.",
    "Northwind Air: pets (cats & dogs) fly for €55 — naïve café 東京 unaffordable\u200b",
    "  leading and trailing whitespace \n",
    "word " * 300,  # longer than the model reads: cut at max_seq_length, as sentence-transformers does
]


# --- choosing a backend (fast) ----------------------------------------------------------------


def test_backend_names_are_checked() -> None:
    assert check_backend(None) is None and check_backend("") is None
    assert check_backend(" ONNX-int8 ") == "onnx-int8"
    for name in BACKENDS:
        assert check_backend(name) == name
    assert CPU_DEFAULT_BACKEND in BACKENDS
    with pytest.raises(BackendError, match=r"unknown embedding backend 'tensorrt': choose one of torch, "):
        check_backend("tensorrt")
    # A usage error (ValueError) that the CLI also reports like an unavailable model (exit 1, no trace).
    assert issubclass(BackendError, ValueError) and issubclass(BackendError, ModelUnavailableError)


def test_bad_backend_fails_before_loading_anything() -> None:
    code = (
        "import sys\n"
        "from loader.embedding import load_embedder, BackendError\n"
        "for kwargs in ({'backend': 'fp8'}, {'backend': 'onnx', 'device': 'cuda'}, {'backend': 'onnx-int8', "
        "'device': 'mps'}):\n"
        "    try:\n"
        "        load_embedder(**kwargs)\n"
        "    except BackendError as error:\n"
        "        print(error)\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'sentence_transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("unknown embedding backend 'fp8'")
    assert lines[1] == "backend 'onnx' runs on the CPU only, not on 'cuda': use --backend torch"
    assert lines[2].startswith("backend 'onnx-int8' runs on the CPU only, not on 'mps'")
    assert lines[3] == "[]"


def test_importing_the_onnx_backend_loads_no_model_library() -> None:
    code = (
        "import sys, loader.onnx_backend; "
        "print([m for m in ('torch', 'transformers', 'sentence_transformers', 'onnxruntime', 'onnx') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_int8_recipe_follows_the_instruction_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_backend.platform, "machine", lambda: "x86_64")
    assert has_int8_dot_product(frozenset({"avx2", "avx512f", "avx512_vnni"}))
    assert has_int8_dot_product(frozenset({"avx2", "avx_vnni"}))
    assert not has_int8_dot_product(frozenset({"avx2", "avx512f", "avx512bw"}))
    monkeypatch.setattr(onnx_backend, "cpu_flags", lambda: frozenset({"avx2"}))
    assert QuantOptions.for_this_cpu() == QuantOptions(per_channel=True, reduce_range=True)
    monkeypatch.setattr(onnx_backend, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert QuantOptions.for_this_cpu() == QuantOptions(per_channel=True, reduce_range=False)
    monkeypatch.setattr(onnx_backend.platform, "machine", lambda: "arm64")
    assert has_int8_dot_product(frozenset())


def test_the_bundled_pipeline_is_mean_pooling_and_normalize() -> None:
    assert pipeline_config(bundled_model_path()) == ("mean", True)


def _st_dir(tmp_path: Path, modules: list[str], pooling: dict[str, Any]) -> Path:
    (tmp_path / "1_Pooling").mkdir(parents=True, exist_ok=True)
    entries = [
        {"idx": i, "name": str(i), "path": "1_Pooling" if kind == "Pooling" else "", "type": f"x.models.{kind}"}
        for i, kind in enumerate(modules)
    ]
    (tmp_path / "modules.json").write_text(json.dumps(entries))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return tmp_path


def test_pipelines_the_exporter_does_not_reproduce_are_refused(tmp_path: Path) -> None:
    ok = _st_dir(tmp_path / "a", ["Transformer", "Pooling"], {"pooling_mode": "cls"})
    assert pipeline_config(ok) == ("cls", False)
    legacy = _st_dir(tmp_path / "b", ["Transformer", "Pooling"], {"pooling_mode_max_tokens": True})
    assert pipeline_config(legacy) == ("max", False)
    dense = _st_dir(tmp_path / "c", ["Transformer", "Pooling", "Dense", "Normalize"], {"pooling_mode": "mean"})
    with pytest.raises(UnsupportedModelError, match="Transformer \\+ Pooling \\+ Dense \\+ Normalize"):
        pipeline_config(dense)
    two_modes = _st_dir(tmp_path / "d", ["Transformer", "Pooling"], {"pooling_mode": ["mean", "max"]})
    with pytest.raises(UnsupportedModelError, match="mean, cls or max pooling"):
        pipeline_config(two_modes)
    with pytest.raises(UnsupportedModelError, match=r"modules\.json"):
        pipeline_config(tmp_path)


def test_cache_key_covers_model_files_versions_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "README.md").write_text("docs")
    base = cache_key(model, "onnx-int8", QuantOptions())
    assert base == cache_key(model, "onnx-int8", QuantOptions())
    (model / "README.md").write_text("other docs")  # does not change the vectors
    assert cache_key(model, "onnx-int8", QuantOptions()) == base
    assert cache_key(model, "onnx-int8", QuantOptions(reduce_range=True)) != base
    assert cache_key(model, "onnx", None) != base
    (model / "model.safetensors").write_bytes(b"weightz")
    changed = cache_key(model, "onnx-int8", QuantOptions())
    assert changed != base
    monkeypatch.setattr(onnx_backend, "_version", lambda package: "9.9" if package == "onnxruntime" else "1")
    assert cache_key(model, "onnx-int8", QuantOptions()) != changed


def _fake_cache(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / MODEL_FILE).write_bytes(b"onnx bytes" * 100)
    (path / TOKENIZER_FILE).write_text("{}")
    info = {"dimension": 384, "max_seq_length": 256, "num_special_tokens": 2, "pad_token_id": 0}
    onnx_backend._write_manifest(path, info)
    return path


def test_a_damaged_cache_is_detected(tmp_path: Path) -> None:
    good = _fake_cache(tmp_path / "good")
    assert read_cache(good).manifest["dimension"] == 384
    truncated = _fake_cache(tmp_path / "truncated")
    (truncated / MODEL_FILE).write_bytes(b"onnx")
    with pytest.raises(OnnxCacheError, match="bytes, the manifest says"):
        read_cache(truncated)
    garbled = _fake_cache(tmp_path / "garbled")
    (garbled / MODEL_FILE).write_bytes(b"xxxx bytes" * 100)  # same size
    with pytest.raises(OnnxCacheError, match="checksum"):
        read_cache(garbled)
    partial = _fake_cache(tmp_path / "partial")
    (partial / MANIFEST).unlink()
    with pytest.raises(OnnxCacheError, match="incomplete"):
        read_cache(partial)
    missing = _fake_cache(tmp_path / "missing")
    (missing / TOKENIZER_FILE).unlink()
    with pytest.raises(OnnxCacheError):
        read_cache(missing)


def test_install_keeps_a_good_cache_and_replaces_a_bad_one(tmp_path: Path) -> None:
    final = _fake_cache(tmp_path / "final")
    ours = _fake_cache(tmp_path / ".tmp-ours")
    onnx_backend._install(ours, final)  # another loader got there first: keep its cache, drop ours
    assert not ours.exists() and read_cache(final)
    (final / MODEL_FILE).write_bytes(b"damaged")
    ours = _fake_cache(tmp_path / ".tmp-ours2")
    onnx_backend._install(ours, final)
    assert not ours.exists() and read_cache(final)
    assert [p.name for p in tmp_path.iterdir()] == ["final"]  # the damaged one is gone


def _batches(batch_size: int, max_batch_tokens: int | None, lengths: list[int]) -> list[list[int]]:
    embedder = object.__new__(OnnxEmbedder)
    embedder.batch_size = batch_size
    embedder.max_batch_tokens = max_batch_tokens
    array = np.array(lengths, dtype=np.int64)
    order = np.argsort(array, kind="stable")
    return [[int(i) for i in batch] for batch in embedder._batches(order, array)]


def test_batches_are_cut_by_rows_and_padded_tokens() -> None:
    assert _batches(2, None, [5, 1, 3, 2, 4]) == [[1, 3], [2, 4], [0]]
    # 100 tokens at most: rows x the longest row of the batch.
    assert _batches(64, 100, [10, 10, 10, 40, 40, 120, 10]) == [[0, 1, 2, 6], [3, 4], [5]]
    assert _batches(64, 100, [300]) == [[0]]  # a row longer than the budget still goes, alone


# --- the exported model (slow: exported once per session, into a temporary cache) --------------


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    embedder = load_embedder(device="cpu", backend="torch")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


@pytest.fixture(scope="module")
def onnx_embedders(onnx_cache: Path) -> dict[str, OnnxEmbedder]:
    loaded = {}
    for backend in ("onnx", "onnx-int8"):
        embedder = load_embedder(device="cpu", backend=backend, cache_dir=onnx_cache)
        assert isinstance(embedder, OnnxEmbedder)
        loaded[backend] = embedder
    return loaded


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "min_cosine"), [("onnx", 0.9999), ("onnx-int8", 0.98)])
def test_onnx_vectors_match_torch(
    torch_embedder: SentenceTransformerEmbedder,
    onnx_embedders: dict[str, OnnxEmbedder],
    backend: str,
    min_cosine: float,
) -> None:
    embedder = onnx_embedders[backend]
    as_protocol: Embedder = embedder  # mypy: the class implements the protocol
    assert as_protocol.dimension == 384 and embedder.backend == backend and embedder.device == "cpu"
    assert embedder.model_name == torch_embedder.model_name == "all-MiniLM-L6-v2"
    reference = torch_embedder.embed(TEXTS)
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= min_cosine, cosines
    # Alone or in a batch (other lengths, padding): the same vector (int8 runs one text at a time).
    alone = np.stack([embedder.embed([text])[0] for text in TEXTS])
    assert np.allclose(alone, vectors, atol=1e-5)
    assert np.allclose(embedder.embed(TEXTS[::-1])[::-1], vectors, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    similarity = vectors[:3] @ vectors[:3].T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


@pytest.mark.slow
def test_tokenization_is_identical_across_backends(
    torch_embedder: SentenceTransformerEmbedder, onnx_embedders: dict[str, OnnxEmbedder]
) -> None:
    st_inputs = torch_embedder._model.preprocess(TEXTS)  # what sentence-transformers feeds the model
    reference_ids = [
        ids[mask.bool()].tolist() for ids, mask in zip(st_inputs["input_ids"], st_inputs["attention_mask"], strict=True)
    ]
    long_text = " ".join(f"topic{i % 50} detail" for i in range(400))
    for embedder in onnx_embedders.values():
        assert embedder.max_tokens == torch_embedder.max_tokens == 254
        assert embedder.max_seq_length == 256
        assert embedder.encode_inputs(TEXTS) == reference_ids
        for text in [*TEXTS, long_text, ""]:
            assert embedder.count_tokens(text) == torch_embedder.count_tokens(text)
            assert embedder.token_offsets(text) == torch_embedder.token_offsets(text)


@pytest.mark.slow
def test_max_tokens_is_what_the_onnx_model_reads(onnx_embedders: dict[str, OnnxEmbedder]) -> None:
    text = " ".join(f"topic{i % 50} detail" for i in range(400))
    for embedder in onnx_embedders.values():
        offsets = embedder.token_offsets(text)
        limit = embedder.max_tokens
        below, at, above = embedder.embed([text[: offsets[n - 1][1]] for n in (limit - 1, limit, limit + 20)])
        assert not np.allclose(below, at, atol=1e-4)
        assert np.allclose(at, above, atol=1e-5)


@pytest.mark.slow
def test_retrieval_on_the_sample_corpus_with_int8(onnx_embedders: dict[str, OnnxEmbedder]) -> None:
    from loader.chunking import chunk_document
    from loader.documents import read_documents
    from loader.records import Document

    if not (DATA / "travel" / "pets.md").is_file():
        pytest.skip("the sample corpus has no travel/pets.md")
    embedder = onnx_embedders["onnx-int8"]
    wanted = {"travel/pets.md", "booking/refunds.md", "baggage/checked-baggage.md", "family/pregnancy.md"}
    docs = [d for d in read_documents(DATA) if isinstance(d, Document) and d.source in wanted]
    chunks = [c for d in docs for c in chunk_document(d, embedder)]
    vectors = embedder.embed([c.text for c in chunks])
    query = embedder.embed(["Can my dog travel with me in the cabin?"])[0]
    assert chunks[int(np.argmax(vectors @ query))].source == "travel/pets.md"


@pytest.mark.slow
def test_the_cache_is_reused_not_re_exported(
    onnx_cache: Path, onnx_embedders: dict[str, OnnxEmbedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend, "export", no_export)
    for backend, first in onnx_embedders.items():
        again = load_embedder(device="cpu", backend=backend, cache_dir=onnx_cache)
        assert isinstance(again, OnnxEmbedder) and again.cache_path == first.cache_path
        assert again.manifest["created"] == first.manifest["created"]
        assert np.array_equal(again.embed(TEXTS[:2]), first.embed(TEXTS[:2]))
    assert len(list(onnx_cache.iterdir())) == 2  # one directory per variant, no temporary ones left
    # The default on the CPU is the measured winner.
    default = load_embedder(device="cpu", cache_dir=onnx_cache)
    assert default.backend == CPU_DEFAULT_BACKEND


@pytest.mark.slow
def test_a_damaged_cache_is_rebuilt(
    tmp_path: Path, onnx_embedders: dict[str, OnnxEmbedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = onnx_embedders["onnx-int8"]
    exports: list[Path] = []

    def fake_export(model_dir: Path, out: Path, *, variant: str, quant: Any) -> dict[str, Any]:
        """As the real export would (same files), without the minute it takes."""
        exports.append(out)
        for name in (MODEL_FILE, TOKENIZER_FILE):
            shutil.copyfile(good.cache_path / name, out / name)
        return {k: v for k, v in good.manifest.items() if k not in {"files", "key", "model_name", "variant"}}

    monkeypatch.setattr(onnx_backend, "export", fake_export)

    def load() -> OnnxEmbedder:
        return onnx_backend.load_onnx_embedder(
            bundled_model_path(), model_name="all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=tmp_path
        )

    def damage(how: str) -> None:
        (path,) = (p for p in tmp_path.iterdir() if not p.name.startswith("."))
        if how == "truncate":
            with (path / MODEL_FILE).open("r+b") as handle:
                handle.truncate(1000)
        elif how == "garble":  # same size, different bytes
            data = bytearray((path / MODEL_FILE).read_bytes())
            data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64
            (path / MODEL_FILE).write_bytes(bytes(data))
        elif how == "partial":
            (path / MANIFEST).unlink()

    expected = good.embed(TEXTS[:3])
    load()
    assert len(exports) == 1
    for how in ("truncate", "garble", "partial"):
        damage(how)
        embedder = load()
        assert np.allclose(embedder.embed(TEXTS[:3]), expected, atol=1e-6), how
        assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1
    assert len(exports) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary dirs left
    # A leftover temporary directory from a loader that died mid-export is ignored.
    (tmp_path / ".tmp-crashed").mkdir()
    load()
    assert len(exports) == 4


@pytest.mark.slow
def test_a_cache_hit_imports_no_torch(onnx_cache: Path, onnx_embedders: dict[str, OnnxEmbedder]) -> None:
    from importlib import metadata

    # The default backend and device: no torch either, where torch is a CPU-only build.
    default = "" if metadata.version("torch").endswith("+cpu") and sys.platform != "darwin" else "device='cpu', "
    code = (
        "import sys\n"
        "from loader.embedding import load_embedder, CPU_DEFAULT_BACKEND\n"
        f"e = load_embedder(backend='onnx-int8', device='cpu', cache_dir={str(onnx_cache)!r})\n"
        "assert e.embed(['hello']).shape == (1, 384)\n"
        f"d = load_embedder({default}cache_dir={str(onnx_cache)!r})\n"
        "assert d.backend == CPU_DEFAULT_BACKEND, d\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    if CPU_DEFAULT_BACKEND.startswith("onnx"):
        assert out.stdout.strip() == "[]"
    assert "exporting" not in out.stderr


@pytest.mark.slow
def test_an_unsupported_model_falls_back_to_torch_by_default_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Path(shutil.copytree(bundled_model_path(), tmp_path / "model"))
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    pooling["pooling_mode_max_tokens"] = True  # mean + max, concatenated: not what the exporter does
    (model / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(UnsupportedModelError, match="use --backend torch"):
        load_embedder(str(model), device="cpu", backend="onnx-int8", cache_dir=tmp_path / "cache")
    embedder = load_embedder(str(model), device="cpu", cache_dir=tmp_path / "cache")
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.dimension == 768
    assert "using the torch backend" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_ensure_cached_rejects_unknown_variants(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an ONNX variant"):
        ensure_cached(bundled_model_path(), model_name="m", variant="torch", cache_dir=tmp_path)


@pytest.fixture(autouse=True)
def _no_real_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Nothing here writes the user's cache (tests pass cache_dir; this catches one that forgets)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    yield
