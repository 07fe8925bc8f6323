"""Action tokenizers: round-trip error bounds, validity reporting, BPE compression, config round trip."""
import json
import math

import numpy as np
import pytest

from robot_rl.policies.action_tokenizers import (BinningTokenizer, FastTokenizer, TokenizerConfig, dct_matrix,
                                                 fit_tokenizer, make_tokenizer)

H, D = 5, 7


def smooth_chunks(n: int, seed: int = 0) -> np.ndarray:
    """Chunks like robot actions: a per-dimension level plus a small drift over the chunk, inside [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, H)[None, :, None]
    return np.clip(rng.uniform(-0.9, 0.9, (n, 1, D)) + rng.normal(0, 0.2, (n, 1, D)) * t, -1, 1)


def test_dct_is_orthonormal():
    c = dct_matrix(H)
    np.testing.assert_allclose(c @ c.T, np.eye(H), atol=1e-12)


@pytest.mark.parametrize("bins", [16, 256])
def test_binning_round_trip_error_bound(bins):
    tok = BinningTokenizer(H, D, bins)
    chunks = np.random.default_rng(1).uniform(-1, 1, (200, H, D))
    errors = []
    for chunk in chunks:
        ids = tok.encode(chunk)
        assert len(ids) == H * D == tok.max_tokens and min(ids) >= 0 and max(ids) < tok.vocab_size
        decoded = tok.decode(ids)
        assert decoded.valid
        errors.append(np.abs(decoded.actions - chunk).max())
    bound = 1.0 / (bins - 1)  # half a bin width
    assert max(errors) <= bound + 1e-12
    assert max(errors) > 0.8 * bound  # the bound is tight: random values do land near bin edges


@pytest.mark.parametrize("scale", [5.0, 10.0, 40.0])
def test_fast_round_trip_error_bound(scale):
    tok = FastTokenizer(H, D, scale)
    assert tok.q_max == math.ceil(scale * math.sqrt(H))
    chunks = np.random.default_rng(2).uniform(-1, 1, (200, H, D))  # rough chunks: every coefficient is used
    worst = max(np.abs(tok.decode(tok.encode(c)).actions - c).max() for c in chunks)
    assert worst <= math.sqrt(H) / (2 * scale) + 1e-12
    extreme = np.ones((H, D))  # the largest DCT coefficient (√H) must not be clipped
    np.testing.assert_allclose(tok.decode(tok.encode(extreme)).actions, extreme, atol=math.sqrt(H) / (2 * scale))


def test_fast_bpe_is_lossless_and_compresses():
    chunks = smooth_chunks(400)
    cfg = fit_tokenizer(TokenizerConfig(kind="fast", scale=10.0, bpe_vocab_size=300), chunks)
    bpe = make_tokenizer(cfg, H, D)
    plain = FastTokenizer(H, D, 10.0)
    assert bpe.vocab_size == 300
    lengths = []
    for chunk in smooth_chunks(50, seed=9):  # unseen chunks
        ids = bpe.encode(chunk)
        lengths.append(len(ids))
        np.testing.assert_array_equal(bpe.decode(ids).actions, plain.decode(plain.encode(chunk)).actions)
    assert np.mean(lengths) < 0.6 * H * D  # high-frequency coefficients are mostly 0: BPE merges them

    # the trained tokenizer survives the JSON round trip through a policy spec
    again = make_tokenizer(TokenizerConfig.model_validate(json.loads(cfg.model_dump_json())), H, D)
    assert again.encode(chunks[0]) == bpe.encode(chunks[0])


@pytest.mark.parametrize("kind", ["bin", "fast", "fast_bpe"])
def test_decode_reports_validity(kind):
    cfg = TokenizerConfig(kind="bin" if kind == "bin" else "fast", bpe_vocab_size=300 if kind == "fast_bpe" else 0)
    tok = make_tokenizer(fit_tokenizer(cfg, smooth_chunks(200)), H, D)
    ids = tok.encode(smooth_chunks(1, seed=3)[0])
    assert tok.decode(ids).valid

    unknown = ids[:-1] + [tok.vocab_size]
    assert tok.decode(unknown) == (None, False)
    lenient = tok.decode(unknown, strict=False)
    assert not lenient.valid and lenient.actions.shape == (H, D)
    if kind != "fast_bpe":  # BPE merges: dropping one id may still spell H·D elements only by accident, not here
        short = tok.decode(ids[:-1])
        assert short == (None, False)
        too_long = tok.decode(ids + ids[:1])
        assert too_long == (None, False)
        padded = tok.decode(ids[:-1], strict=False)
        assert not padded.valid and padded.actions.shape == (H, D) and np.abs(padded.actions).max() <= 1.0
    assert tok.decode([]) == (None, False)


def test_fast_bpe_wrong_element_count_is_invalid():
    cfg = fit_tokenizer(TokenizerConfig(kind="fast", bpe_vocab_size=300), smooth_chunks(200))
    tok = make_tokenizer(cfg, H, D)
    ids = tok.encode(smooth_chunks(1, seed=4)[0])
    single = [tok.bpe.token_to_id(tok._text(np.zeros(1, np.int64)))]  # one zero coefficient
    assert not tok.decode(ids + single).valid  # H·D + 1 elements


def test_encode_rejects_bad_chunks():
    tok = FastTokenizer(H, D)
    with pytest.raises(ValueError, match="shape"):
        tok.encode(np.zeros((H, D + 1)))
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(np.full((H, D), np.nan))
    with pytest.raises(ValueError, match="alphabet"):
        tok.train_bpe(smooth_chunks(10), vocab_size=10)


@pytest.mark.parametrize("kind", ["bin", "fast", "fast_bpe"])
def test_piece_lengths_count_the_elements_each_id_spells(kind):
    """What constrained decoding tracks: the pieces of any encoded chunk add up to exactly H·D elements."""
    cfg = TokenizerConfig(kind="bin" if kind == "bin" else "fast", bpe_vocab_size=300 if kind == "fast_bpe" else 0)
    tok = make_tokenizer(fit_tokenizer(cfg, smooth_chunks(200)), H, D)
    lengths = tok.piece_lengths
    assert lengths.shape == (tok.vocab_size,) and lengths.min() == 1
    assert (lengths.max() > 1) == (kind == "fast_bpe")
    for chunk in smooth_chunks(20, seed=5):
        ids = tok.encode(chunk)
        assert lengths[ids].sum() == H * D == len(tok.elements(ids))
        if kind != "bin":
            np.testing.assert_array_equal(tok.elements(ids), tok.coefficients(chunk))


def test_default_binning_represents_no_motion_exactly():
    """An even bin count has no bin at 0: a policy that means "stay" would drift half a bin every step."""
    tok = make_tokenizer(TokenizerConfig(kind="bin"), H, D)
    np.testing.assert_array_equal(tok.decode(tok.encode(np.zeros((H, D)))).actions, 0.0)
    even = BinningTokenizer(H, D, 256)
    assert np.abs(even.decode(even.encode(np.zeros((H, D)))).actions).min() > 0
