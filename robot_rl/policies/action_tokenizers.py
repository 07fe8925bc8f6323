"""Action tokenizers: a normalised chunk (H, D) in [-1, 1] ↔ a sequence of integer ids in [0, vocab_size).

* `BinningTokenizer` (OpenVLA / RT-2 style): every element is its own token, uniform bins over [-1, 1], time-major.
  Round-trip error ≤ 1 / (bins − 1) per element.
* `FastTokenizer` (after FAST, Pertsch et al. 2025; written here, no hub download): per action dimension a DCT-II over
  the H steps, coefficients scaled by γ and rounded, flattened frequency-major (all dimensions' lowest frequency
  first), then optionally compressed with BPE (the `tokenizers` library) trained on the dataset's chunks.
  With the orthonormal DCT the rounding error e (|e_k| ≤ 1/(2γ)) maps back through Cᵀ, so every element is off by at
  most √H / (2γ).

`decode` says whether the ids were a well-formed chunk (the right number of elements for H × D, every id known): the
format check FCR rewards. Decoding leniently (`strict=False`) still returns a chunk for malformed ids (missing
elements padded with 0, extra ones dropped) but keeps `valid` False. `piece_lengths` (how many elements each id
spells) is what constrained decoding in the tokenized policy tracks so that every generated chunk is well formed.
"""
from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class Decoded(NamedTuple):
    actions: np.ndarray | None  # (H, D) in [-1, 1]; None when strict decoding found the ids malformed
    valid: bool


class TokenizerConfig(BaseModel):
    """Stored inside the policy spec, so a checkpoint rebuilds its exact tokenizer (trained BPE merges included)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["bin", "fast"] = "fast"
    bins: int = Field(255, ge=2, description="bin: bins per element over [-1, 1] (odd: 0, no motion, is a bin)")
    scale: float = Field(10.0, gt=0, description="fast: DCT coefficient scale γ before rounding")
    bpe_vocab_size: int = Field(0, ge=0, description="fast: BPE vocabulary to train (0 = no BPE)")
    bpe: str = Field("", description="fast: the trained BPE tokenizer (tokenizers JSON), filled in by fit()")


class ActionTokenizer(ABC):
    _pad_element = 0  # what lenient decoding fills missing elements with (a zero DCT coefficient; bins: the middle)

    def __init__(self, horizon: int, action_dim: int):
        self.horizon, self.action_dim = horizon, action_dim
        self.num_elements = horizon * action_dim

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Ids are in [0, vocab_size)."""

    @property
    @abstractmethod
    def max_tokens(self) -> int:
        """The longest id sequence `encode` can produce."""

    @abstractmethod
    def encode(self, chunk: np.ndarray) -> list[int]:
        """(H, D) normalised chunk (clipped to [-1, 1]) → ids."""

    @property
    @abstractmethod
    def piece_lengths(self) -> np.ndarray:
        """(vocab_size,) how many elements each id spells (≥ 1): 1 everywhere, or a BPE piece's length."""

    @abstractmethod
    def elements(self, ids: Sequence[int]) -> np.ndarray | None:
        """ids → the flat element sequence they spell (bin indices or quantised coefficients); None if an id is
        unknown. QACR compares these, not the ids: one different BPE merge would shift every id after it."""

    @abstractmethod
    def _chunk(self, elements: np.ndarray) -> np.ndarray:
        """Exactly H·D elements → (H, D) chunk."""

    def decode(self, ids: Sequence[int], strict: bool = True) -> Decoded:
        elements = self.elements(ids)
        valid = elements is not None and len(elements) == self.num_elements
        if valid:
            return Decoded(self._chunk(elements), True)
        if strict:
            return Decoded(None, False)
        elements = elements if elements is not None else np.zeros(0, np.int64)
        padded = np.full(self.num_elements, self._pad_element, np.int64)
        padded[: min(len(elements), self.num_elements)] = elements[: self.num_elements]
        return Decoded(self._chunk(padded), False)

    def _check(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape != (self.horizon, self.action_dim):
            raise ValueError(f"chunk has shape {chunk.shape}, the tokenizer encodes ({self.horizon}, "
                             f"{self.action_dim})")
        if not np.isfinite(chunk).all():
            raise ValueError("chunk contains NaN or inf")
        return chunk.clip(-1.0, 1.0)


class BinningTokenizer(ActionTokenizer):
    """Uniform per-element bins: id k ↔ value −1 + 2k/(bins − 1)."""

    def __init__(self, horizon: int, action_dim: int, bins: int = 255):
        super().__init__(horizon, action_dim)
        self.bins = bins
        self._pad_element = (bins - 1) // 2

    @property
    def vocab_size(self) -> int:
        return self.bins

    @property
    def max_tokens(self) -> int:
        return self.num_elements

    @property
    def piece_lengths(self) -> np.ndarray:
        return np.ones(self.bins, np.int64)

    def encode(self, chunk: np.ndarray) -> list[int]:
        chunk = self._check(chunk)
        return np.rint((chunk.reshape(-1) + 1.0) / 2.0 * (self.bins - 1)).astype(np.int64).tolist()

    def elements(self, ids: Sequence[int]) -> np.ndarray | None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return ids if ((ids >= 0) & (ids < self.bins)).all() else None

    def _chunk(self, elements: np.ndarray) -> np.ndarray:
        return (elements.astype(np.float64) / (self.bins - 1) * 2.0 - 1.0).reshape(self.horizon, self.action_dim)


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix C (n × n): coefficients = C @ x, and x = Cᵀ @ coefficients."""
    k, t = np.arange(n)[:, None], np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (t + 0.5) * k / n)
    c[0] /= np.sqrt(2.0)
    return c


CHAR_BASE = 0x100  # quantised coefficient q is the character chr(CHAR_BASE + q + q_max) in BPE text


class FastTokenizer(ActionTokenizer):
    """DCT → ×γ → round → (BPE). Without BPE, id = q + q_max with q ∈ [−q_max, q_max], q_max = ⌈γ√H⌉ (the largest
    coefficient of a chunk in [-1, 1] is √H)."""

    def __init__(self, horizon: int, action_dim: int, scale: float = 10.0, bpe: str = ""):
        super().__init__(horizon, action_dim)
        self.scale = scale
        self.q_max = math.ceil(scale * math.sqrt(horizon))
        self.dct = dct_matrix(horizon)
        self.bpe = None
        if bpe:
            from tokenizers import Tokenizer

            self.bpe = Tokenizer.from_str(bpe)

    @property
    def vocab_size(self) -> int:
        return self.bpe.get_vocab_size() if self.bpe is not None else 2 * self.q_max + 1

    @property
    def max_tokens(self) -> int:
        return self.num_elements  # BPE merges only ever shorten the sequence

    @property
    def piece_lengths(self) -> np.ndarray:
        if self.bpe is None:
            return np.ones(2 * self.q_max + 1, np.int64)
        return np.array([len(self.bpe.id_to_token(i)) for i in range(self.vocab_size)], np.int64)

    def coefficients(self, chunk: np.ndarray) -> np.ndarray:
        """Quantised DCT coefficients, flattened frequency-major: q[k, d] for k = 0..H−1, d = 0..D−1."""
        chunk = self._check(chunk)
        q = np.rint(self.scale * (self.dct @ chunk))  # (H frequencies, D)
        return q.clip(-self.q_max, self.q_max).astype(np.int64).reshape(-1)

    def _text(self, q: np.ndarray) -> str:
        return "".join(chr(CHAR_BASE + int(v) + self.q_max) for v in q)

    def encode(self, chunk: np.ndarray) -> list[int]:
        q = self.coefficients(chunk)
        if self.bpe is None:
            return (q + self.q_max).tolist()
        return self.bpe.encode(self._text(q)).ids

    def elements(self, ids: Sequence[int]) -> np.ndarray | None:
        ids = [int(i) for i in ids]
        if self.bpe is None:
            q = np.asarray(ids, dtype=np.int64) - self.q_max
            return q if (np.abs(q) <= self.q_max).all() else None
        pieces = [self.bpe.id_to_token(i) if 0 <= i < self.vocab_size else None for i in ids]
        if any(p is None for p in pieces):
            return None
        q = np.asarray([ord(c) - CHAR_BASE - self.q_max for c in "".join(pieces)], dtype=np.int64)
        return q if (np.abs(q) <= self.q_max).all() else None

    def _chunk(self, elements: np.ndarray) -> np.ndarray:
        coeffs = elements.reshape(self.horizon, self.action_dim).astype(np.float64) / self.scale
        return (self.dct.T @ coeffs).clip(-1.0, 1.0)

    def train_bpe(self, chunks: Iterable[np.ndarray], vocab_size: int) -> str:
        """Train BPE merges on the quantised coefficient strings of `chunks`; returns the tokenizer JSON (also
        used from now on). The alphabet holds every possible coefficient, so any chunk stays encodable."""
        from tokenizers import Tokenizer
        from tokenizers.models import BPE
        from tokenizers.trainers import BpeTrainer

        alphabet = [chr(CHAR_BASE + i) for i in range(2 * self.q_max + 1)]
        if vocab_size < len(alphabet):
            raise ValueError(f"bpe_vocab_size {vocab_size} is below the coefficient alphabet ({len(alphabet)})")
        tokenizer = Tokenizer(BPE())
        trainer = BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False,
                             limit_alphabet=len(alphabet))
        tokenizer.train_from_iterator((self._text(self.coefficients(c)) for c in chunks), trainer)
        self.bpe = tokenizer
        return tokenizer.to_str()


def make_tokenizer(cfg: TokenizerConfig, horizon: int, action_dim: int) -> ActionTokenizer:
    if cfg.kind == "bin":
        return BinningTokenizer(horizon, action_dim, cfg.bins)
    return FastTokenizer(horizon, action_dim, cfg.scale, cfg.bpe)


def fit_tokenizer(cfg: TokenizerConfig, chunks: np.ndarray) -> TokenizerConfig:
    """The config with BPE trained on `chunks` (N, H, D) when it asks for BPE and has none yet; else unchanged."""
    if cfg.kind != "fast" or cfg.bpe_vocab_size == 0 or cfg.bpe:
        return cfg
    tokenizer = FastTokenizer(chunks.shape[1], chunks.shape[2], cfg.scale)
    bpe = tokenizer.train_bpe(chunks, cfg.bpe_vocab_size)
    json.loads(bpe)  # the JSON must survive storage in the spec
    return cfg.model_copy(update={"bpe": bpe})
