"""DEG reward on hand-made latents: the pointer follows order, the dense return is a potential difference, so a
policy that hovers next to the goal earns less than one that succeeds, over every horizon; threshold calibration."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robot_rl.rewards.deg import DEGEncoder, DEGReward, calibrate, load_encoder, to_tensor
from robot_rl.rewards.params import DEGParams, DEGSourceParams

K, D = 10, 16
THRESHOLDS = {"coarse_threshold": 0.8, "fine_threshold": 0.9}


def basis_guidance() -> torch.Tensor:
    """K orthonormal guidance latents: frame k matches only itself."""
    return torch.eye(D)[:K]


def towards(k: int, closeness: float) -> torch.Tensor:
    """A latent between frame k − 1 and frame k: cosine `closeness` to frame k."""
    G = basis_guidance()
    return F.normalize(closeness * G[k] + (1 - closeness**2) ** 0.5 * G[k - 1], dim=0)


def test_pointer_moves_to_the_best_match_in_a_small_window_and_never_back():
    r = DEGReward(DEGParams(window=2, **THRESHOLDS))
    G = basis_guidance()
    r.reset(G)
    assert r.step(G[2]).pointer == 2          # in the window [0, 2]: moves there
    assert r.step(G[5]).pointer == 2          # beyond m + W: order matters, no jump ahead
    assert r.step(G[1]).pointer == 2          # never back
    assert r.step(F.normalize(G[3] + 0.9 * G[4], dim=0)).pointer == 2  # best match 3 at cos 0.74 < δ_c
    s = r.step(F.normalize(G[3] + 0.3 * G[4], dim=0))                   # 3 at cos 0.96, better than 4
    assert (s.pointer, s.progress) == (3, pytest.approx(3 / (K - 1))) and s.coarse > 0


def test_reward_is_a_potential_difference_with_every_part_recorded():
    p = DEGParams(alpha=3.0, beta=1.0, gamma=1.0, payment="potential", **THRESHOLDS)
    r = DEGReward(p)
    G = basis_guidance()
    r.reset(G)
    start = G[K - 1]                       # unlike frame 0 (an unrelated view): Φ(s_0) = 0
    steps = [r.step(z) for z in (start, towards(1, 0.95), G[1], G[1], towards(2, 0.97), G[2])]
    assert all(s.reward == pytest.approx(s.coarse + s.fine) and s.goal == 0 for s in steps)
    # undiscounted, the return telescopes to Φ at the end: 2 frames of progress and a perfect match to frame 2
    assert sum(s.reward for s in steps) == pytest.approx(3.0 * (2 + 1) / (K - 1))
    assert steps[1].coarse > 0 and steps[1].fine > 0          # frame 1 reached, loosely (cos 0.95)
    assert steps[2].coarse == 0 and steps[2].fine > 0         # the match tightens: the fine part pays
    assert steps[3].reward == pytest.approx(0.0)              # loitering pays nothing
    assert steps[4].reward > 0                                # reaching the next frame never lowers Φ (β ≤ 1)


def test_ordered_frames_earn_far_more_than_the_same_frames_shuffled():
    """With an encoder whose latents follow progress (each frame nearest to the guidance frame at its normalised
    time, neighbours partly similar), shuffling an episode's frames loses most of the return: order matters."""
    torch.manual_seed(0)
    k, T = 50, 120
    G = torch.eye(k)
    progress = torch.linspace(0, k - 1, T)
    frames = F.normalize(torch.exp(-(torch.arange(k)[None] - progress[:, None]) ** 2)
                         + 0.05 * torch.rand(T, k), dim=-1)
    r = DEGReward(DEGParams(gamma=1.0, payment="potential", **THRESHOLDS))

    def total(zs):
        r.reset(G)
        return sum(r.step(z).reward for z in zs)

    ordered = total(frames)
    shuffled = np.mean([total(frames[torch.randperm(T)]) for _ in range(5)])
    assert ordered > 2.5 and ordered > 1.2 * shuffled, (ordered, shuffled)


def test_the_goal_term_pays_every_step_closer_to_the_last_frame_and_only_there():
    G = basis_guidance()
    approach = [towards(K - 1, c) for c in (0.85, 0.88, 0.95, 0.99)]   # cosines to the last frame, all ≥ δ_c

    def run(goal_weight):
        r = DEGReward(DEGParams(alpha=3.0, beta=1.0, gamma=1.0, payment="potential", goal_weight=goal_weight,
                                **THRESHOLDS))
        r.reset(G)
        return [r.step(z) for z in [G[k] for k in range(1, K - 1)] + approach]

    plain, with_goal = run(0.0), run(1.0)
    assert all(s.goal == 0 for s in plain) and all(s.goal == 0 for s in with_goal[:K - 2])  # before the last frame
    assert with_goal[K - 2].pointer == K - 1
    assert all(s.goal > 0 for s in with_goal[K - 1:])              # each step closer pays, below δ_f (0.9) too
    assert plain[K - 1].reward == pytest.approx(0.0)               # 0.85 → 0.88: the paper's terms are flat there
    assert all(s.reward == pytest.approx(s.coarse + s.fine + s.goal) for s in with_goal)
    phi_f, phi_g = (0.99 - 0.9) / 0.1, (0.99 - 0.8) / 0.2          # the potential reached, undiscounted
    assert sum(s.reward for s in with_goal) == pytest.approx(3.0 * (1 + phi_f / (K - 1) + phi_g))


def test_the_level_payment_pays_more_per_step_where_the_potential_is_higher():
    """(1 − γ)Φ(s′): unlike a potential difference, staying at a frame further along keeps paying more."""
    gamma = 0.99
    r = DEGReward(DEGParams(alpha=3.0, beta=1.0, gamma=gamma, payment="level", **THRESHOLDS))
    G = basis_guidance()
    r.reset(G)
    steps = [r.step(z) for z in (G[1], G[1], G[2], G[2], towards(3, 0.95))]
    assert all(s.reward == pytest.approx(s.coarse + s.fine + s.goal) for s in steps)
    assert steps[0].reward == pytest.approx((1 - gamma) * 3.0 * (1 + 1) / (K - 1))   # frame 1, perfect match
    assert steps[1].reward == pytest.approx(steps[0].reward)                           # staying pays the same
    assert steps[2].reward > steps[1].reward and steps[3].reward == pytest.approx(steps[2].reward)
    assert steps[4].pointer == 3 and steps[4].reward > steps[3].reward   # frame 3 at cos 0.95: Φ = α·3.5/(K − 1)
    with pytest.raises(ValueError, match="needs gamma < 1"):
        DEGParams(gamma=1.0, payment="level")


@pytest.mark.parametrize("goal_weight", [0.0, 1.0])
@pytest.mark.parametrize("payment, gamma", [("potential", 1.0), ("potential", 0.99), ("level", 0.99)])
def test_hovering_next_to_the_goal_earns_less_than_succeeding_over_every_horizon(payment, gamma, goal_weight):
    theta, limit = 10.0, 100
    p = DEGSourceParams(model_path="unused", gamma=gamma, payment=payment, theta=theta, goal_weight=goal_weight,
                        **THRESHOLDS)
    G = basis_guidance()
    # a path along the guidance to the last frame in K steps; the hover stays at the best possible near-goal
    # latent (the last frame itself: the pointer at K − 1, perfect fine match) without the success predicate
    path = [G[k] for k in range(K)]

    def discounted(rewards):
        return sum(gamma**t * x for t, x in enumerate(rewards))

    r = DEGReward(p)
    r.reset(G)
    hover = [r.step(z).reward for z in path + [G[-1]] * (limit - K)]
    for reach_step in range(K, limit + 1):       # succeed at any step up to the episode limit (then it ends)
        r.reset(G)
        succeed = [r.step(z).reward for z in (path + [G[-1]] * limit)[:reach_step]]
        succeed[-1] += theta
        best_hover = max(discounted(hover[:h]) for h in range(1, limit + 1))  # hovering for any horizon
        # the margin shrinks as the dense part grows: 1.9 at κ = 0 and 0.29 at κ = 1 (γ 0.99, success at the limit)
        assert discounted(succeed) > best_hover + 0.2, (reach_step, discounted(succeed), best_hover)


def test_success_must_outweigh_the_largest_dense_return():
    with pytest.raises(ValueError, match="success dominates"):
        DEGSourceParams(alpha=6.0, beta=1.0, theta=10.0)
    with pytest.raises(ValueError, match="success dominates"):
        DEGSourceParams(alpha=3.0, beta=1.0, goal_weight=2.0, theta=10.0)
    with pytest.raises(ValueError, match="not set and the model has no calibration"):
        DEGReward(DEGParams())


def test_calibration_separates_matched_from_mismatched_and_orders_the_thresholds():
    rng = np.random.default_rng(0)
    T, k = 60, 20
    gap = np.abs(np.linspace(0, 1, T)[:, None] - np.linspace(0, 1, k)[None, :])
    maps = [np.clip(0.95 - 1.5 * gap + 0.05 * rng.standard_normal((T, k)), -1, 1) for _ in range(3)]
    cal = calibrate(maps)
    assert cal.roc_auc > 0.99 and cal.matched_mean > 0.9 and cal.mismatched_mean < 0.6
    assert cal.mismatched_mean < cal.coarse_threshold <= cal.fine_threshold <= 1
    assert cal.coarse_true_positive >= 0.9 and cal.coarse_false_positive <= 0.06  # loose: 5 % false positives
    noise = [rng.uniform(-1, 1, (T, k)) for _ in range(3)]
    assert abs(calibrate(noise).roc_auc - 0.5) < 0.1
    r = DEGReward(DEGParams(), cal)
    assert (r.coarse_threshold, r.fine_threshold) == (cal.coarse_threshold, cal.fine_threshold)


def test_bad_guidance_frames_and_models_get_clear_errors(tmp_path):
    r = DEGReward(DEGParams(**THRESHOLDS))
    with pytest.raises(RuntimeError, match="before reset"):
        r.step(torch.ones(D))
    with pytest.raises(ValueError, match="K ≥ 2"):
        r.reset(torch.ones(1, D))
    with pytest.raises(ValueError, match="RGB frames"):
        to_tensor(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="multiple of 16"):
        DEGEncoder(image_size=100)
    with pytest.raises(FileNotFoundError, match="robot-rl deg train"):
        load_encoder(tmp_path)
    with pytest.raises(ValueError, match="matched and mismatched"):
        calibrate([np.ones((1, 1))])
