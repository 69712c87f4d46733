"""ONNX Runtime backends for the embedding model: "onnx" (float32) and "onnx-int8" (int8 weights).

The ONNX files are never downloaded: the first use exports them from the local sentence-transformers
model (``torch.onnx.export`` of the transformer, with the model's pooling and the L2 normalization
inside the graph). The float32 model gets ONNX Runtime's transformer fusions (BERT-family models);
the int8 one is quantized for this CPU's instruction set with a mixed recipe (``QuantOptions``:
8-bit blockwise weights where precision matters, dynamic int8 with the outlier channels kept in
float32 where speed does), checked against the torch model before it is cached. The result is
cached once per machine, under

    $XDG_CACHE_HOME/s3vectors-docsearch/onnx/<model>-<variant>-<key>/   (default ~/.cache/...)

where the key hashes the model's files, the versions of torch/transformers/onnx/onnxruntime, the
export recipe and the quantization options. A cache directory is built in a temporary directory and
renamed into place (atomic: concurrent loaders never see a partial one); its manifest records the
SHA-256 of every file, checked on each load, so a damaged cache is rebuilt, never used.

At run time (cache hit) only onnxruntime, tokenizers and numpy are imported: no torch, no
transformers. The tokenizer is the sentence-transformers model's own, saved with the export, so token
counts, offsets and model inputs are identical to the torch backend's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from loader.embedding import BaseEmbedder, ModelUnavailableError

if TYPE_CHECKING:
    import onnxruntime

ONNX_BACKENDS = ("onnx", "onnx-int8")
# Bump when the export, optimization or quantization recipe changes: old caches are then ignored.
EXPORT_RECIPE = 2
OPSET = 17
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
_POOLING_MODES = ("mean", "cls", "max")
# Files of a model directory that do not change its vectors.
_IGNORED_MODEL_FILES = frozenset({"README.md", ".gitattributes", "data_config.json"})
_SELF_CHECK_TEXTS = (
    "Can I bring my cat in the cabin?",
    "Small cats and dogs may travel in the cabin in a carrier under the seat, for a fee of €55.",
    "Refunds are paid to the original form of payment within seven days of the request. " * 6,
    "東京 naïve café — 😀",
)
# Cosine floor of the export self-check against the torch model (float32 is ~1.0 exactly).
_SELF_CHECK_MIN_COSINE = {"onnx": 0.9999, "onnx-int8": 0.98}
# Inner batches of at most this many padded tokens (rows x longest row), per backend, measured on
# the sample corpus (bench/bench_embedding.py --extra): small batches of similar lengths beat one big
# padded batch on a small CPU (the activations stay in cache). int8 runs one text at a time, as fast,
# and then a text's vector never depends on the other texts of the call (activations are quantized
# per run): the same chunk always gets the same vector, in a load or as a query.
DEFAULT_MAX_BATCH_TOKENS = {"onnx": 512, "onnx-int8": 1}


class OnnxCacheError(RuntimeError):
    """A cache directory is missing, partial or corrupted (it is then rebuilt)."""


class UnsupportedModelError(ModelUnavailableError):
    """The model's sentence-transformers pipeline cannot be exported (use the torch backend)."""


# --- this machine ------------------------------------------------------------------------------


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case (Linux /proc/cpuinfo, else numpy's runtime detection)."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.split(":", 1)[1].split())
                break
    try:
        import importlib

        umath = importlib.import_module("numpy._core._multiarray_umath")
        features: dict[str, bool] = getattr(umath, "__cpu_features__", {})
        flags.update(name.lower() for name, present in features.items() if present)
    except ImportError:  # pragma: no cover - numpy moved it (numpy < 2)
        pass
    return frozenset(flags)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def has_int8_dot_product(flags: frozenset[str] | None = None) -> bool:
    """Whether int8 GEMMs multiply-accumulate without saturating: x86 VNNI (AVX512-VNNI, AVX-VNNI,
    AMX) or 64-bit ARM (sdot). Without it (plain AVX2/AVX512), u8*s8 pairs can overflow int16 and
    ONNX Runtime's documentation recommends 7-bit weights (``reduce_range``)."""
    if platform.machine().lower() in {"arm64", "aarch64"}:
        return True
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_vnni", "avx512vnni", "avx_vnni", "avxvnni", "amx_int8"})


def physical_cores() -> int:
    """Physical cores this process may run on (hyperthread siblings counted once); 0 where unknown
    (not Linux), which lets ONNX Runtime choose (its default is the physical cores too)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return 0
    cores: set[str] = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


MATMUL_GROUPS = ("qkv", "attn_out", "ffn1", "ffn2", "other")


@dataclass(frozen=True)
class QuantOptions:
    """How the int8 variant is built. Each weight MatMul of the transformer belongs to a group
    ("qkv": the attention's query/key/value projections, "attn_out": its output projection, "ffn1" /
    "ffn2": the feed-forward layers, "other"), quantized one of two ways:

    - ``blockwise``: 8-bit weights in blocks of ``block_size`` (``MatMulNBits``), computed with int8
      activations quantized per row and block (ONNX Runtime ``accuracy_level`` 4): nearly lossless;
    - ``dynamic``: ``quantize_dynamic`` (``MatMulInteger``: the CPU's fastest int8 GEMM, VNNI/AMX),
      weights per output channel (``per_channel``), activations per tensor. BERT's activations have
      a few outlier channels (30x the median) that ruin a per-tensor scale: the ``outliers`` largest
      channels of each such MatMul input (found on built-in calibration texts) are multiplied in
      float32 instead, the rest in int8 (LLM.int8()'s decomposition, exact in float).

    The default mixes them where measured best (bench/results/embedding.json, ``--extra``): every
    MatMul quantized dynamically is ~5x torch but moves some vectors to cosine 0.99 and flips near-tied
    top-1 results; all blockwise is ~2.7x; this mix keeps cosine >= 0.997 at ~3x. ``reduce_range`` (7-bit
    weights) is for CPUs without an int8 dot product (VNNI), where u8 x s8 products can saturate.
    ``fuse`` applies ONNX Runtime's transformer fusions first (a fused Attention is then quantized as
    a whole, dynamically, or kept in float32).
    """

    blockwise: tuple[str, ...] = ("qkv", "ffn2", "other")
    dynamic: tuple[str, ...] = ("attn_out", "ffn1")
    outliers: int = 4
    per_channel: bool = True
    reduce_range: bool = False
    block_size: int = 128
    fuse: bool = False

    def __post_init__(self) -> None:
        chosen = set(self.blockwise) | set(self.dynamic)
        if chosen - set(MATMUL_GROUPS) or set(self.blockwise) & set(self.dynamic):
            raise ValueError(f"bad MatMul groups: blockwise {self.blockwise}, dynamic {self.dynamic}")

    @classmethod
    def for_this_cpu(cls) -> QuantOptions:
        return cls(reduce_range=not has_int8_dot_product())


# --- the cache ----------------------------------------------------------------------------------


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s3vectors-docsearch" / "onnx"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def model_files(model_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in model_dir.rglob("*")
        if p.is_file()
        and p.name not in _IGNORED_MODEL_FILES
        and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
    )


def cache_key(model_dir: Path, variant: str, quant: QuantOptions | None) -> str:
    """Hash of everything the cached files depend on."""
    digest = hashlib.sha256()
    for path in model_files(model_dir):
        digest.update(f"{path.relative_to(model_dir).as_posix()}\0{_file_sha256(path)}\n".encode())
    recipe = {
        "recipe": EXPORT_RECIPE,
        "opset": OPSET,
        "variant": variant,
        "quant": asdict(quant) if quant else None,
        "versions": {p: _version(p) for p in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime")},
    }
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "model"


@dataclass(frozen=True)
class CachedModel:
    path: Path  # the cache directory
    manifest: dict[str, Any]

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_json(self) -> str:
        return (self.path / TOKENIZER_FILE).read_text(encoding="utf-8")


def read_cache(path: Path, *, verify: bool = True) -> CachedModel:
    """The cache directory ``path`` if it is complete and intact, else ``OnnxCacheError``."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        for name in (MODEL_FILE, TOKENIZER_FILE):
            if name not in files:
                raise OnnxCacheError(f"{path}: the manifest lists no {name}")
        for name, info in files.items():
            file = path / name
            if file.stat().st_size != info["size"]:
                raise OnnxCacheError(f"{file}: {file.stat().st_size} bytes, the manifest says {info['size']}")
            if verify and _file_sha256(file) != info["sha256"]:
                raise OnnxCacheError(f"{file}: checksum mismatch")
        for field in ("dimension", "max_seq_length", "num_special_tokens", "pad_token_id"):
            int(manifest[field])
    except OnnxCacheError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OnnxCacheError(f"{path}: unreadable or incomplete cache ({error})") from error
    return CachedModel(path, manifest)


def _write_manifest(directory: Path, info: dict[str, Any]) -> None:
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _file_sha256(p)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    (directory / MANIFEST).write_text(json.dumps({**info, "files": files}, indent=2, sort_keys=True) + "\n")


def _install(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` to ``final``; if another process got there first with a good cache,
    keep that one; a bad one in the way is moved aside and removed."""
    for _ in range(3):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if not final.exists():
                raise
        try:
            read_cache(final)
        except OnnxCacheError:
            trash = final.with_name(f".trash-{final.name}-{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(OSError):
                os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
            continue
        shutil.rmtree(tmp, ignore_errors=True)  # a concurrent loader built the same thing
        return
    raise OnnxCacheError(f"could not install {final}")


def ensure_cached(
    model_dir: Path,
    *,
    model_name: str,
    variant: str,
    cache_dir: Path | None = None,
    quant: QuantOptions | None = None,
    log_to: Callable[[str], None] | None = None,
) -> CachedModel:
    """The cached ONNX model for ``variant`` ("onnx" or "onnx-int8"), exported first if needed."""
    if variant not in ONNX_BACKENDS:
        raise ValueError(f"not an ONNX variant: {variant!r}")
    quant = (quant or QuantOptions.for_this_cpu()) if variant == "onnx-int8" else None
    pipeline_config(model_dir)  # an unsupported model fails here, before any work
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / f"{_safe_name(model_name)}-{variant}-{cache_key(model_dir, variant, quant)}"
    say = log_to or (lambda message: print(message, file=sys.stderr, flush=True))
    if final.exists():
        try:
            return read_cache(final)
        except OnnxCacheError as error:
            say(f"loader: the ONNX cache {final} is damaged ({error}); rebuilding it")
    root.mkdir(parents=True, exist_ok=True)
    say(f"loader: exporting {model_name} to ONNX ({variant}) for this machine, once: cached in {final}")
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        info = export(model_dir, tmp, variant=variant, quant=quant)
        info.update(model_name=model_name, variant=variant, model_dir=str(model_dir), key=final.name)
        _write_manifest(tmp, info)
        _install(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"loader: ONNX export done in {time.monotonic() - started:.0f} s")
    return read_cache(final)


# --- the export ---------------------------------------------------------------------------------


def pipeline_config(model_dir: Path) -> tuple[str, bool]:
    """(pooling mode, has a Normalize module) from the model's modules.json, or UnsupportedModelError
    for a pipeline this exporter does not reproduce exactly (Dense layers, several pooling modes...)."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UnsupportedModelError(
            f"{model_dir} has no readable modules.json: not a sentence-transformers model"
        ) from error
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedModelError(
            f"the ONNX backends support Transformer + Pooling [+ Normalize] models, not {' + '.join(kinds)}: "
            "use --backend torch"
        )
    pooling_dir = model_dir / modules[1].get("path", "")
    try:
        config = json.loads((pooling_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UnsupportedModelError(f"cannot read the pooling config in {pooling_dir}: {error}") from error
    mode = config.get("pooling_mode")
    if mode is None:  # legacy keys: pooling_mode_mean_tokens, pooling_mode_cls_token, ...
        legacy = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
        active = [key for key, value in config.items() if key.startswith("pooling_mode_") and value]
        mode = [legacy.get(key, key) for key in active]
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode not in _POOLING_MODES or config.get("include_prompt") is False:
        raise UnsupportedModelError(
            f"the ONNX backends support mean, cls or max pooling, not {mode!r}: use --backend torch"
        )
    return str(mode), kinds[-1] == "Normalize"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and quantizer's warnings (tracer, deprecation, "consider pre-processing")."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def export(model_dir: Path, out: Path, *, variant: str, quant: QuantOptions | None) -> dict[str, Any]:
    """Write ``out``/model.onnx and tokenizer.json for ``variant``; return the manifest's fields.

    Checks the exported model against the torch model (the reference) on a few texts, padded in one
    batch, before anything is cached.
    """
    pooling, _ = pipeline_config(model_dir)
    try:
        import onnxruntime  # noqa: F401 - fail early with a clear message
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as error:
        raise ModelUnavailableError(f"the ONNX backends need onnxruntime, onnx and torch: {error}") from error
    transformers_logging.disable_progress_bar()
    st_model = SentenceTransformer(
        str(model_dir), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
    )
    first: Any = st_model[0]
    transformer = first.auto_model.eval()
    tokenizer = st_model.tokenizer
    dimension = int(st_model.get_embedding_dimension() or 0)
    max_seq_length = int(st_model.max_seq_length or 512)
    (out / TOKENIZER_FILE).write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")

    wrapper = _sentence_module(transformer, pooling)
    sample = tokenizer(
        ["a short text", "a slightly longer text to pad the other one"], padding=True, return_tensors="pt"
    )
    fp32 = out / ("model-fp32.onnx" if variant == "onnx-int8" else MODEL_FILE)
    with _quiet(), torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic axes as asked
        )
    config = transformer.config
    optimized = False
    if quant is None or quant.fuse:
        optimized = _optimize(fp32, config)
    if variant == "onnx-int8":
        assert quant is not None
        with _quiet():
            quantize_int8(fp32, out / MODEL_FILE, quant, tokenizer_json=(out / TOKENIZER_FILE).read_text())
        fp32.unlink()

    info: dict[str, Any] = {
        "dimension": dimension,
        "max_seq_length": max_seq_length,
        "num_special_tokens": int(tokenizer.num_special_tokens_to_add(pair=False)),
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "pooling": pooling,
        "optimized": optimized,
        "quantization": asdict(quant) if quant else None,
        "opset": OPSET,
        "recipe": EXPORT_RECIPE,
        "versions": {p: _version(p) for p in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime")},
        "cpu": cpu_model(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # The self-check: the ONNX model against the torch model, several lengths padded in one batch.
    session = make_session(out / MODEL_FILE)
    texts = list(_SELF_CHECK_TEXTS)
    reference = st_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_seq_length, return_tensors="np")
    got = session.run(
        None,
        {
            "input_ids": encoded["input_ids"].astype(np.int64),
            "attention_mask": encoded["attention_mask"].astype(np.int64),
        },
    )[0]
    cosine = float(np.min(np.sum(got * reference, axis=1)))
    if got.shape != (len(texts), dimension) or not cosine >= _SELF_CHECK_MIN_COSINE[variant]:
        raise ModelUnavailableError(
            f"the ONNX export of {model_dir} ({variant}) does not reproduce the model (cosine {cosine:.4f}): "
            "use --backend torch"
        )
    info["self_check_min_cosine"] = round(cosine, 6)
    return info


# Calibration texts for the outlier channels (varied on purpose; the outliers are the model's own).
CALIBRATION_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Can I bring my cat in the cabin?",
    "Refunds are paid to the original form of payment within seven days of the request.",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong stepped out at 02:56 UTC.",
    "def f(x):\n    return x ** 2  # square",
    "東京は日本の首都です。大阪は関西にあります。",
    "Price: €55 per pet, per flight (max. 8 kg incl. carrier).",
    "Terms and conditions apply. See section 4.2(b) for details on liability and exclusions.",
    "hello",
    "The patient was advised to take two tablets daily after meals and to avoid alcohol.",
    "# Installation\n\nRun `pip install -r requirements.txt`, then `python -m loader data/`.",
    "Our quarterly revenue grew 12% year over year, driven by strong demand in Europe and Asia.",
)


def matmul_group(node: Any) -> str | None:
    """The group (``MATMUL_GROUPS``) of a weight MatMul / fused Attention node of an exported BERT-style
    encoder, by the module names the exporter keeps in node names; None for other nodes."""
    if node.op_type == "Attention":
        return "qkv"
    if node.op_type != "MatMul":
        return None
    name = node.name
    if any(f"/self/{part}/" in name for part in ("query", "key", "value")):
        return "qkv"
    if "/attention/output/dense/" in name:
        return "attn_out"
    if "/intermediate/dense/" in name:
        return "ffn1"
    if "/output/dense/" in name:
        return "ffn2"
    return "other"


def quantize_int8(source: Path, target: Path, quant: QuantOptions, *, tokenizer_json: str) -> None:
    """Write the int8 model of the float32 ``source`` (see ``QuantOptions``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    weights = {i.name for i in model.graph.initializer}
    groups: dict[str, list[str]] = {}
    for node in model.graph.node:
        group = matmul_group(node)
        if group and (node.op_type == "Attention" or node.input[1] in weights):
            groups.setdefault(group, []).append(node.name)
    dynamic = [name for group in quant.dynamic for name in groups.get(group, [])]
    blockwise = {name for group in quant.blockwise for name in groups.get(group, [])}
    kept_float: list[str] = []
    if quant.outliers and dynamic:
        outliers = _outlier_channels(model, set(dynamic), quant.outliers, tokenizer_json)
        kept_float = _decompose(model, outliers)
    if blockwise:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        others = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name not in blockwise]
        quantizer = MatMulNBitsQuantizer(
            model,
            bits=8,
            block_size=quant.block_size,
            is_symmetric=True,
            accuracy_level=4,  # int8 activations, per row and block
            nodes_to_exclude=others,  # (nodes_to_include alone does not restrict it)
        )
        quantizer.process()
        model = quantizer.model.model
    staged = target.with_name("model-staged.onnx")
    onnx.save(model, str(staged))
    if dynamic:
        quantize_dynamic(
            staged,
            target,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_quantize=dynamic,
            nodes_to_exclude=kept_float,
            per_channel=quant.per_channel,
            reduce_range=quant.reduce_range,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": 1},  # FLOAT, for nodes of the com.microsoft domain
        )
        staged.unlink()
    else:
        staged.replace(target)


def _outlier_channels(model: Any, nodes: set[str], count: int, tokenizer_json: str) -> dict[str, list[int]]:
    """For each MatMul of ``nodes``: the (at most ``count``) input channels whose largest magnitude on
    the calibration texts exceeds twice the 99th percentile of all channels'."""
    import onnx
    import onnxruntime as ort
    from onnx import helper
    from tokenizers import Tokenizer

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    matmuls = [n for n in probe.graph.node if n.name in nodes and n.op_type == "MatMul"]
    inputs = list(dict.fromkeys(n.input[0] for n in matmuls))
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in inputs)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    peak: dict[str, Any] = {}
    for text in CALIBRATION_TEXTS:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        values = session.run(inputs, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        for name, value in zip(inputs, values, strict=True):
            magnitude = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            peak[name] = np.maximum(peak[name], magnitude) if name in peak else magnitude
    result = {}
    for node in matmuls:
        magnitude = peak[node.input[0]]
        limit = 2.0 * float(np.percentile(magnitude, 99))
        channels = [int(c) for c in np.argsort(-magnitude)[:count] if magnitude[c] > limit]
        if channels:
            result[node.name] = sorted(channels)
    return result


def _decompose(model: Any, outliers: dict[str, list[int]]) -> list[str]:
    """Rewrite each MatMul ``x @ W`` of ``outliers`` as ``(x * mask) @ W' + x[..., idx] @ W[idx]``: the
    outlier channels ``idx`` zeroed in the first product (quantized) and multiplied in float32 in the
    second (exactly the same result in float). Returns the names of the float32 MatMuls."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    nodes, kept_float = [], []
    for node in graph.node:
        channels = outliers.get(node.name)
        if not channels:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]]).copy()
        mask = np.ones(weight.shape[0], dtype=weight.dtype)
        mask[channels] = 0
        outlier_weight = weight[channels, :].copy()
        weight[channels, :] = 0  # so that the per-channel weight scales ignore those rows too
        prefix = node.name.strip("/").replace("/", "_")
        graph.initializer.extend(
            [
                numpy_helper.from_array(mask, f"{prefix}_mask"),
                numpy_helper.from_array(np.array(channels, dtype=np.int64), f"{prefix}_channels"),
                numpy_helper.from_array(weight, f"{prefix}_weight"),
                numpy_helper.from_array(outlier_weight, f"{prefix}_outlier_weight"),
            ]
        )
        x, y = node.input[0], node.output[0]
        nodes += [
            helper.make_node("Mul", [x, f"{prefix}_mask"], [f"{prefix}_inliers"], name=f"{prefix}_mask_mul"),
            helper.make_node("MatMul", [f"{prefix}_inliers", f"{prefix}_weight"], [f"{prefix}_main"], name=node.name),
            helper.make_node(
                "Gather", [x, f"{prefix}_channels"], [f"{prefix}_outliers"], name=f"{prefix}_gather", axis=-1
            ),
            helper.make_node(
                "MatMul", [f"{prefix}_outliers", f"{prefix}_outlier_weight"], [f"{prefix}_side"], name=f"{prefix}_float"
            ),
            helper.make_node("Add", [f"{prefix}_main", f"{prefix}_side"], [y], name=f"{prefix}_sum"),
        ]
        kept_float.append(f"{prefix}_float")
    graph.ClearField("node")
    graph.node.extend(nodes)
    return kept_float


def _optimize(path: Path, config: Any) -> bool:
    """ONNX Runtime's transformer fusions, in place, for BERT-family encoders; False if not applied."""
    if getattr(config, "model_type", None) not in {"bert", "roberta", "xlm-roberta", "mpnet", "distilbert"}:
        return False
    from onnxruntime.transformers import optimizer

    model_type = "bert" if config.model_type != "distilbert" else "distilbert"
    with _quiet():
        optimized = optimizer.optimize_model(
            str(path),
            model_type=model_type,
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # only the offline fusions; the session applies its own at load
        )
        optimized.save_model_to_file(str(path))
    return True


def _sentence_module(transformer: Any, pooling: str) -> Any:
    import torch

    class SentenceModule(torch.nn.Module):
        """Transformer -> pooling -> L2 normalization, as sentence-transformers computes them."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                pooled = tokens[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
                if pooling == "mean":
                    pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                else:  # max
                    pooled = torch.where(mask.bool(), tokens, torch.full_like(tokens, -1e9)).max(dim=1).values
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentenceModule().eval()


# --- running it ---------------------------------------------------------------------------------


def make_session(path: Path, *, threads: int | None = None, spinning: bool = False) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session tuned for a small machine: intra-op threads = physical cores, one
    inter-op thread (the graph is a chain), all graph optimizations, and worker threads that sleep
    rather than spin between ops (no cycles stolen from the loader's reader and writer threads, or
    from other processes; measured no slower, see bench/results/embedding-variants.json)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()  # 2 here: both cores, no hyperthreads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEmbedder(BaseEmbedder):
    """The ``Embedder`` over a cached ONNX export: same tokenizer, same inputs, batched by length."""

    def __init__(
        self,
        cached: CachedModel,
        *,
        model_name: str,
        backend: str,
        batch_size: int = 64,
        threads: int | None = None,
        spinning: bool = False,
        max_batch_tokens: int | None = None,
    ) -> None:
        manifest = cached.manifest
        super().__init__(
            model_name=model_name,
            device="cpu",
            batch_size=batch_size,
            dimension=int(manifest["dimension"]),
            tokenizer_json=cached.tokenizer_json,
            max_seq_length=int(manifest["max_seq_length"]),
            num_special_tokens=int(manifest["num_special_tokens"]),
        )
        self.backend = backend
        self.cache_path = cached.path
        self.manifest = manifest
        from tokenizers import Tokenizer

        # The model's inputs: with [CLS]/[SEP], cut at max_seq_length as sentence-transformers does.
        self._input_tokenizer = Tokenizer.from_str(cached.tokenizer_json)
        self._input_tokenizer.no_padding()
        self._input_tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._pad_id = int(manifest["pad_token_id"])
        # None: the backend's default; 0: no token budget (batches of batch_size rows); 1: one text a call.
        self.max_batch_tokens = (
            DEFAULT_MAX_BATCH_TOKENS.get(backend, 0) if max_batch_tokens is None else max_batch_tokens
        )
        self._session = make_session(cached.model_file, threads=threads, spinning=spinning)

    def encode_inputs(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids the model reads for each text, special tokens included, truncated."""
        return [encoding.ids for encoding in self._input_tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        result = np.zeros((len(texts), self._dimension), dtype=np.float32)
        if not texts:
            return result
        ids = self.encode_inputs(texts)
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
        for batch in self._batches(order, lengths):
            width = int(lengths[batch].max())
            input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                n = int(lengths[index])
                input_ids[row, :n] = ids[index]
                attention_mask[row, :n] = 1
            (vectors,) = self._session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
            result[batch] = vectors
        return result

    def _batches(self, order: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> Iterator[npt.NDArray[np.int64]]:
        """Consecutive runs of ``order`` (sorted by length) of at most ``batch_size`` rows and, when
        set, ``max_batch_tokens`` padded tokens (at least one row each)."""
        start = 0
        while start < len(order):
            end = min(start + self.batch_size, len(order))
            if self.max_batch_tokens:
                # Rows sorted by length: the last row is the widest, so the batch costs rows x its length.
                while end - start > 1 and (end - start) * int(lengths[order[end - 1]]) > self.max_batch_tokens:
                    end -= 1
            yield order[start:end]
            start = end


def load_onnx_embedder(
    model_dir: Path,
    *,
    model_name: str,
    backend: str,
    batch_size: int = 64,
    cache_dir: Path | None = None,
    quant: QuantOptions | None = None,
    threads: int | None = None,
    spinning: bool = False,
    max_batch_tokens: int | None = None,
) -> OnnxEmbedder:
    def embedder(cached: CachedModel) -> OnnxEmbedder:
        return OnnxEmbedder(
            cached,
            model_name=model_name,
            backend=backend,
            batch_size=batch_size,
            threads=threads,
            spinning=spinning,
            max_batch_tokens=max_batch_tokens,
        )

    cached = ensure_cached(model_dir, model_name=model_name, variant=backend, cache_dir=cache_dir, quant=quant)
    try:
        return embedder(cached)
    except Exception as error:  # a file ONNX Runtime cannot load despite its checksum: rebuild once
        if type(error).__module__.split(".")[0] != "onnxruntime":
            raise
        shutil.rmtree(cached.path, ignore_errors=True)
        cached = ensure_cached(model_dir, model_name=model_name, variant=backend, cache_dir=cache_dir, quant=quant)
        return embedder(cached)
