"""Tokenized chunk policy: a `transformers` causal LM that writes the action chunk as discrete tokens (VLA style).

Sequence fed to the LM (embeddings):

    [state] [camera_1] … [camera_C] [instruction bytes, padded to L] [BOS] a_1 … a_U [EOS]
     └ linear projections of the normalised state and of each camera's image feature ┘  └ action tokens ┘

Vocabulary: PAD, BOS, EOS, the 256 UTF-8 byte values of the instruction, then the action tokenizer's ids.

Constrained decoding, the same in SFT, GRPO rollouts, the GRPO ratio and KL, evaluation and serving: with E = H·D
elements to write and r_t = E − (elements spelled by the ids before step t),

    allowed_t = {action id v : 1 ≤ len(v) ≤ r_t}  if r_t > 0,   {EOS}  if r_t = 0
    π_τ(a_t | ·) = softmax(logits_t / τ restricted to allowed_t)

so no piece overshoots the element count and EOS is forced exactly at zero: every completion decodes (malformed
share 0 by construction; the tokenizer always holds the length-1 pieces, so there is no dead end). Log-probabilities
for the GRPO ratio and KL use the same mask and temperature as the sampler (after SimpleVLA-RL).

The LM is a small Llama or Qwen2 built from a config object (`TokenizedOptions`), or the config of a local
checkpoint (`lm_path`, its weights via `load_pretrained_lm`). Images: the project's CNN (`vision: cnn`), a small
ViT from config (`vit`), or a local SigLIP/ViT checkpoint path.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from robot_rl.policies.action_tokenizers import ActionTokenizer, Decoded, TokenizerConfig, make_tokenizer
from robot_rl.policies.base import ChunkPolicy, PolicySpec
from robot_rl.policies.encoders import IMAGE_FEATURE_DIM, ImageEncoder, random_shift
from robot_rl.policies.normalizer import Normalizer

PAD, BOS, EOS = 0, 1, 2
TEXT_OFFSET = 3
TEXT_VOCAB = 256
ACTION_OFFSET = TEXT_OFFSET + TEXT_VOCAB


class TokenizedOptions(BaseModel):
    """`PolicySpec.tokenized`: tokenizer, LM and vision backbone of a tokenized policy (width = spec.hidden_dim,
    layers = spec.depth unless `lm_path` gives a config)."""

    model_config = ConfigDict(extra="forbid")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    arch: Literal["llama", "qwen2"] = "llama"
    heads: int = Field(4, ge=1)
    lm_path: str = Field("", description="local HF causal-LM checkpoint: its config replaces arch/width/depth")
    vision: str = Field("cnn", description="'cnn', 'vit' (small, from config) or a local SigLIP/ViT checkpoint")
    instruction: str = Field("", description="instruction used when an observation carries none")
    max_instruction_bytes: int = Field(48, ge=1)
    temperature: float = Field(1.0, ge=0, description="serving temperature (0 = greedy)")


def _lm_config(spec: PolicySpec, opts: TokenizedOptions, vocab_size: int):
    from transformers import AutoConfig, LlamaConfig, Qwen2Config

    if opts.lm_path:
        config = AutoConfig.from_pretrained(opts.lm_path)
        config.vocab_size = vocab_size
    else:
        cls = LlamaConfig if opts.arch == "llama" else Qwen2Config
        config = cls(vocab_size=vocab_size, hidden_size=spec.hidden_dim, intermediate_size=2 * spec.hidden_dim,
                     num_hidden_layers=spec.depth, num_attention_heads=opts.heads, num_key_value_heads=opts.heads,
                     max_position_embeddings=512)
    config.tie_word_embeddings = False  # safetensors stores each tensor once; tied weights would share memory
    config.pad_token_id, config.bos_token_id, config.eos_token_id = PAD, BOS, EOS
    return config


class VisionFeatures(nn.Module):
    """(B, 3, H, W) uint8 → (B, out_dim) per camera: the project's CNN (one per camera) or a shared ViT/SigLIP."""

    def __init__(self, spec: PolicySpec, vision: str):
        super().__init__()
        self.kind, self.image_size, self.cameras = vision, spec.image_size, list(spec.cameras)
        self.shift_pad = max(1, round(spec.image_size / 16))
        if vision == "cnn":
            self.cnn = nn.ModuleDict({cam: ImageEncoder() for cam in self.cameras})
            self.out_dim = IMAGE_FEATURE_DIM
            return
        from transformers import AutoConfig, AutoModel, ViTConfig, ViTModel

        if vision == "vit":
            config = ViTConfig(image_size=spec.image_size, patch_size=max(4, spec.image_size // 8), hidden_size=64,
                               num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
            self.vit = ViTModel(config, add_pooling_layer=False)
        else:
            config = AutoConfig.from_pretrained(vision)
            config = getattr(config, "vision_config", config)  # a SigLIP/CLIP checkpoint: keep its vision tower
            config.image_size = spec.image_size
            self.vit = AutoModel.from_config(config)
        self.out_dim = config.hidden_size

    def forward(self, camera: str, images: torch.Tensor, augment: bool) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        if augment:
            x = random_shift(x, self.shift_pad)
        if self.kind == "cnn":
            return self.cnn[camera](x)
        hidden = self.vit(pixel_values=(x - 0.5) / 0.5).last_hidden_state  # SigLIP/ViT normalisation
        return hidden.mean(dim=1)


class TokenizedPolicy(ChunkPolicy):
    def __init__(self, spec: PolicySpec, normalizer: Normalizer | None = None):
        super().__init__()
        if spec.type != "tokenized":
            raise ValueError(f"TokenizedPolicy needs spec.type 'tokenized', got {spec.type!r}")
        from transformers import AutoModelForCausalLM

        self.spec = spec
        self.options = TokenizedOptions.model_validate(spec.tokenized)
        self.normalizer = normalizer if normalizer is not None else Normalizer(spec.action_dim, spec.state_dim)
        self.tokenizer: ActionTokenizer = make_tokenizer(self.options.tokenizer, spec.horizon, spec.action_dim)
        self.vocab_size = ACTION_OFFSET + self.tokenizer.vocab_size
        self.max_new_tokens = self.tokenizer.max_tokens + 1  # + EOS
        # elements each LM id spells: 0 for PAD/BOS/EOS/text, the piece length for action ids (a buffer: moves with
        # the model, not saved in checkpoints since the tokenizer rebuilds it)
        lengths = torch.zeros(self.vocab_size, dtype=torch.long)
        lengths[ACTION_OFFSET:] = torch.as_tensor(self.tokenizer.piece_lengths)
        self.register_buffer("piece_lengths", lengths, persistent=False)
        self.lm = AutoModelForCausalLM.from_config(_lm_config(spec, self.options, self.vocab_size))
        width = self.lm.config.hidden_size
        self.state_proj = nn.Sequential(nn.Linear(spec.state_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.vision = VisionFeatures(spec, self.options.vision) if spec.cameras else None
        self.image_proj = nn.Linear(self.vision.out_dim, width) if spec.cameras else None

    def load_pretrained_lm(self) -> None:
        """Load the weights of `lm_path` into the LM (its token embeddings resized to this vocabulary)."""
        from transformers import AutoModelForCausalLM

        if not self.options.lm_path:
            raise ValueError("load_pretrained_lm needs tokenized.lm_path")
        # safetensors only: a checkpoint that has just pytorch_model.bin (a pickle) is refused, never unpickled
        pretrained = AutoModelForCausalLM.from_pretrained(self.options.lm_path, tie_word_embeddings=False,
                                                          use_safetensors=True)
        pretrained.resize_token_embeddings(self.vocab_size)
        self.lm.load_state_dict(pretrained.state_dict())

    # ---- sequence pieces -------------------------------------------------------------------------------------
    def instruction_ids(self, obs: dict, batch: int) -> torch.Tensor:
        """(B, L) byte tokens of each observation's instruction (obs["instruction"]: a list of B strings), padded."""
        texts = obs.get("instruction") or [self.options.instruction] * batch
        if len(texts) != batch:
            raise ValueError(f"{len(texts)} instructions for a batch of {batch}")
        L = self.options.max_instruction_bytes
        ids = torch.full((batch, L), PAD, dtype=torch.long)
        for i, text in enumerate(texts):
            raw = text.encode("utf-8")[:L]
            ids[i, : len(raw)] = torch.tensor(list(raw), dtype=torch.long) + TEXT_OFFSET
        return ids

    def prefix_embeds(self, obs: dict, augment: bool = False) -> torch.Tensor:
        """(B, P, width): state, cameras, instruction, BOS."""
        state = obs["state"]
        batch, embed = state.shape[0], self.lm.get_input_embeddings()
        parts = [self.state_proj(self.normalizer.normalize_state(state.float()))[:, None]]
        for camera in self.spec.cameras:
            images = obs.get("images") or {}
            if camera not in images:
                raise KeyError(f"observation lacks image for camera {camera!r} (policy cameras: {self.spec.cameras})")
            parts.append(self.image_proj(self.vision(camera, images[camera], augment))[:, None])
        text = torch.cat([self.instruction_ids(obs, batch), torch.full((batch, 1), BOS)], dim=1)
        parts.append(embed(text.to(state.device)))
        return torch.cat(parts, dim=1)

    def completion_logits(self, obs: dict, tokens: torch.Tensor, repeat: int = 1,
                          augment: bool = False) -> torch.Tensor:
        """Teacher-forced logits (N, T, V) predicting each of `tokens` (N, T), which follow each observation
        `repeat` times (N = B·repeat)."""
        prefix = self.prefix_embeds(obs, augment).repeat_interleave(repeat, dim=0)
        x = torch.cat([prefix, self.lm.get_input_embeddings()(tokens[:, :-1])], dim=1)
        return self.lm(inputs_embeds=x).logits[:, prefix.shape[1] - 1:].float()

    def forward(self, obs: dict, tokens: torch.Tensor, repeat: int = 1, temperature: float = 1.0) -> torch.Tensor:
        """log π_τ(token_t | prefix, tokens_<t) under the decoding constraint, (N, T); 0 after the first EOS. A
        forward() so that DDP (accelerate) syncs gradients."""
        return self.constrained_log_probs(self.completion_logits(obs, tokens, repeat), tokens, temperature)

    # ---- constrained decoding --------------------------------------------------------------------------------
    def allowed_tokens(self, remaining: torch.Tensor) -> torch.Tensor:
        """(...,) elements still to write → (..., V) bool: action ids that fit while any remain, else only EOS."""
        lengths = self.piece_lengths
        fits = (lengths > 0) & (lengths <= remaining[..., None])
        eos = torch.zeros_like(fits)
        eos[..., EOS] = True
        return torch.where((remaining > 0)[..., None], fits, eos)

    def constrain(self, logits: torch.Tensor, remaining: torch.Tensor, temperature: float) -> torch.Tensor:
        """Logits / τ with every disallowed id at −inf (τ = 0: the masked logits unscaled, for argmax)."""
        scaled = logits / temperature if temperature > 0 else logits
        return scaled.masked_fill(~self.allowed_tokens(remaining), float("-inf"))

    def remaining_before(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) elements still to write before each token of teacher-forced sequences."""
        spelled = self.piece_lengths[tokens]
        return self.tokenizer.num_elements - (torch.cumsum(spelled, dim=1) - spelled)

    def constrained_log_probs(self, logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
        """log π_τ of `tokens` (N, T) from teacher-forced logits (N, T, V) under the constraint; 0 after the first
        EOS. A token the constraint forbids (a malformed target) gets −inf."""
        if temperature <= 0:
            raise ValueError(f"log-probabilities need a sampling temperature > 0, got {temperature}")
        inside = self.completion_mask(tokens)
        logp = torch.log_softmax(self.constrain(logits, self.remaining_before(tokens), temperature), dim=-1)
        logp = logp.gather(-1, tokens[..., None])[..., 0]
        return torch.where(inside, logp, torch.zeros_like(logp))

    @staticmethod
    def completion_mask(tokens: torch.Tensor) -> torch.Tensor:
        """True for every generated token up to and including the first EOS."""
        eos_before = torch.cumsum((tokens == EOS).long(), dim=1) - (tokens == EOS).long()
        return eos_before == 0

    # ---- tokens ↔ chunks -------------------------------------------------------------------------------------
    def encode_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """(N, H, D) normalised → (N, max_new_tokens) LM ids: action ids, EOS, PAD."""
        out = torch.full((chunks.shape[0], self.max_new_tokens), PAD, dtype=torch.long)
        for i, chunk in enumerate(chunks.detach().cpu().numpy()):
            ids = self.tokenizer.encode(chunk)
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long) + ACTION_OFFSET
            out[i, len(ids)] = EOS
        return out

    def action_ids(self, sequence: torch.Tensor) -> tuple[list[int], bool]:
        """The tokenizer ids of a generated sequence up to EOS, and whether it was well terminated (an EOS present
        and nothing but action ids before it)."""
        seq = sequence.tolist()
        ended = EOS in seq
        body = seq[: seq.index(EOS)] if ended else seq
        ids = [t - ACTION_OFFSET for t in body]
        return ids, ended and all(i >= 0 for i in ids)

    def decode(self, sequence: torch.Tensor, strict: bool = True) -> Decoded:
        """A generated sequence → chunk; valid only when well terminated and the tokenizer accepts the ids."""
        ids, well_formed = self.action_ids(sequence)
        if strict and not well_formed:
            return Decoded(None, False)
        decoded = self.tokenizer.decode([i for i in ids if i >= 0], strict=strict)
        return Decoded(decoded.actions, decoded.valid and well_formed)

    # ---- sampling --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, obs: dict, n: int = 1, generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> torch.Tensor:
        """n completions per observation under the decoding constraint at temperature τ (0 = greedy),
        (B·n, max_new_tokens) LM ids (PAD after EOS), a state's samples adjacent."""
        prefix = self.prefix_embeds(obs).repeat_interleave(n, dim=0)
        out = self.lm(inputs_embeds=prefix, use_cache=True)
        logits, cache = out.logits[:, -1].float(), out.past_key_values
        N = prefix.shape[0]
        tokens = torch.full((N, self.max_new_tokens), PAD, dtype=torch.long, device=prefix.device)
        remaining = torch.full((N,), self.tokenizer.num_elements, dtype=torch.long, device=prefix.device)
        done = torch.zeros(N, dtype=torch.bool, device=prefix.device)
        for t in range(self.max_new_tokens):
            logits = self.constrain(logits, remaining, temperature)
            if temperature == 0:
                token = logits.argmax(-1)
            else:
                probs = torch.softmax(logits, dim=-1)
                token = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(prefix.device)
            token = torch.where(done, torch.full_like(token, PAD), token)
            tokens[:, t] = token
            remaining -= self.piece_lengths[token]
            done |= token == EOS
            if done.all():
                break
            out = self.lm(inputs_embeds=self.lm.get_input_embeddings()(token[:, None]), past_key_values=cache,
                          use_cache=True)
            logits, cache = out.logits[:, -1].float(), out.past_key_values
        return tokens

    @torch.no_grad()
    def sample_normalized(self, obs: dict, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        tokens = self.generate(obs, n, generator, self.options.temperature)
        decoded = [self.decode(seq) for seq in tokens]
        malformed = sum(not d.valid for d in decoded)
        if malformed:  # constrained decoding makes this impossible; a served chunk must never be made up
            raise RuntimeError(f"{malformed} of {len(decoded)} constrained completions did not decode")
        out = torch.as_tensor(np.stack([d.actions for d in decoded]), dtype=torch.float32, device=obs["state"].device)
        return out.view(-1, n, self.spec.horizon, self.spec.action_dim)

    def token_nll(self, obs: dict, tokens: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """Per-sample mean negative log-likelihood of well-formed target LM ids (N, T) under the decoding constraint
        at τ = 1 (what generate samples from; PAD after EOS ignored), (N,)."""
        logp = self.constrained_log_probs(self.completion_logits(obs, tokens, augment=augment), tokens, 1.0)
        mask = self.completion_mask(tokens).float()
        return -(logp * mask).sum(1) / mask.sum(1)

    def loss(self, obs: dict, actions_normalized: torch.Tensor) -> torch.Tensor:
        """Supervised loss: per-sample token NLL of the tokenized demo chunk, (B,)."""
        tokens = self.encode_chunks(actions_normalized).to(obs["state"].device)
        return self.token_nll(obs, tokens, augment=self.training)
