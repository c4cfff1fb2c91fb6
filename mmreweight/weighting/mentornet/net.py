"""The MentorNet network and its fitting to a predefined curriculum (MentorNet-PD).

Architecture (reference ``mentornet_nn``), for inputs ``[ℓ, diff, y, e]``::

    c_fw, c_bw = cell states of a bidirectional 1-unit LSTM run over (ℓ, diff)
    z = [E_y[y] (2), E_e[e] (5), c_fw, c_bw]            (9 features)
    v = σ(w₂ᵀ tanh(W₁ z + b₁) + b₂)                      (W₁: 20 × 9)

The reference feeds the LSTM a sequence of *one* step (one example, no history); per-anchor
detection inputs have no natural sequence either. From the zero initial state one LSTM step
gives ``c = σ(a_i)·tanh(a_g)`` with ``(a_i, a_g) = W x + b`` — the forget and output gates cannot
reach ``c`` — so each direction is exactly one gated unit. We implement those two units directly
(:class:`OneStepBiLSTMCell`): same function as the reference, no dead gate weights, no cuDNN
sequence machinery for 10⁵–10⁶ anchors of length-1 sequences.

The epoch embedding ``E_e`` (100 × 5) is fixed, as in the reference: a seeded Glorot-uniform table
kept in a buffer so that a saved mentor carries it.
"""
import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .curricula import NUM_EPOCHS, Curriculum

#: the reference's synthetic grid (``data_generator.generate_pretrain_defined``)
GRID_LOSS = torch.cat([torch.arange(0, 10, 0.1), torch.arange(10, 30, 1.0)])
GRID_DIFF = torch.arange(-5, 5, 0.1)


class OneStepBiLSTMCell(nn.Module):
    """Cell states of a bidirectional ``hidden=1`` LSTM after one step from zero state.

    ``c_d = σ(w_{i,d}ᵀx + b_{i,d}) · tanh(w_{g,d}ᵀx + b_{g,d})`` for d ∈ {forward, backward}.
    """

    def __init__(self, in_features: int = 2) -> None:
        super().__init__()
        self.gates = nn.Linear(in_features, 4)  # (input, candidate) × (forward, backward)

    def forward(self, x: Tensor) -> Tensor:
        a = self.gates(x).view(-1, 2, 2)  # (N, direction, [input gate, candidate])
        return torch.sigmoid(a[..., 0]) * torch.tanh(a[..., 1])


class MentorNetwork(nn.Module):
    """MentorNet: ``[ℓ, diff, y, e]`` (N, 4) → logits (N,); ``weights()`` applies the sigmoid.

    Buffers besides the parameters:
        epoch_embedding: the fixed (100, 5) epoch table.
        input_scale: factor applied to ℓ and diff first (1 for grid-fitted mentors; a
            data-driven mentor stores ``1/std(ℓ)`` of its training losses).
        epoch_map: (100,) epoch → the epoch whose code is used (identity by default). A
            data-driven mentor trained on losses from a few checkpoints never saw the other
            epochs' (random, fixed) codes, so each epoch is mapped to the nearest one it saw —
            a generalisation of the reference's ``fixed_epoch_after_burn_in`` clamp.
    """

    def __init__(self, label_embedding_size: int = 2, epoch_embedding_size: int = 5,
                 num_fc_nodes: int = 20, seed: int = 0) -> None:
        super().__init__()
        self.config = dict(label_embedding_size=label_embedding_size,
                           epoch_embedding_size=epoch_embedding_size,
                           num_fc_nodes=num_fc_nodes, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        bound = math.sqrt(6.0 / (NUM_EPOCHS + epoch_embedding_size))  # Glorot uniform
        table = (torch.rand(NUM_EPOCHS, epoch_embedding_size, generator=gen) * 2 - 1) * bound
        self.register_buffer('epoch_embedding', table)
        self.register_buffer('input_scale', torch.ones(()))
        self.register_buffer('epoch_map', torch.arange(NUM_EPOCHS))
        # Initialise from ``seed`` alone, leaving the global RNG as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.label_embedding = nn.Embedding(2, label_embedding_size)
            self.lstm = OneStepBiLSTMCell(2)
            self.fc1 = nn.Linear(label_embedding_size + epoch_embedding_size + 2, num_fc_nodes)
            self.fc2 = nn.Linear(num_fc_nodes, 1)

    def forward(self, features: Tensor) -> Tensor:
        features = features.float()
        x = features[:, :2] * self.input_scale
        y = features[:, 2].round().long().clamp(0, 1)
        e = self.epoch_map[features[:, 3].round().long().clamp(0, NUM_EPOCHS - 1)]
        z = torch.cat([self.label_embedding(y), self.epoch_embedding[e], self.lstm(x)], dim=1)
        return self.fc2(torch.tanh(self.fc1(z))).squeeze(1)

    @torch.no_grad()
    def restrict_epochs(self, seen: Tensor) -> None:
        """Map every epoch to the nearest epoch in ``seen`` (the lower one on a tie)."""
        seen = seen.unique().sort().values.to(self.epoch_map.device)
        dist = (torch.arange(NUM_EPOCHS, device=seen.device)[:, None] - seen[None, :]).abs()
        self.epoch_map.copy_(seen[dist.argmin(1)])  # argmin returns the first, i.e. lower, tie

    def weights(self, features: Tensor) -> Tensor:
        """v = σ(logits) ∈ (0, 1)."""
        return torch.sigmoid(self.forward(features))


def curriculum_grid(curriculum: Curriculum, num_points: int = 100_000,
                    generator: Optional[torch.Generator] = None):
    """A random subset of the reference grid with its curriculum targets.

    Grid: ℓ ∈ {0, 0.1, …, 9.9} ∪ {10, …, 29}, diff ∈ {−5, −4.9, …, 4.9}, e ∈ {0, …, 99}, and — as
    our label is a positive flag, which hard-example mining reads — y ∈ {0, 1} (the reference's
    grid has y = 0 only). Returns ``(features (M, 4), targets (M,))``.
    """
    sizes = (len(GRID_LOSS), len(GRID_DIFF), 2, NUM_EPOCHS)
    total = math.prod(sizes)
    idx = torch.randperm(total, generator=generator)[:min(num_points, total)]
    i_e = idx % sizes[3]
    i_y = (idx // sizes[3]) % 2
    i_d = (idx // (sizes[3] * 2)) % sizes[1]
    i_l = idx // (sizes[3] * 2 * sizes[1])
    feats = torch.stack([GRID_LOSS[i_l], GRID_DIFF[i_d], i_y.float(), i_e.float()], dim=1)
    targets = curriculum(feats[:, 0], feats[:, 1], feats[:, 2], feats[:, 3]).float()
    return feats, targets


def train_mentor(net: MentorNetwork, features: Tensor, targets: Tensor, steps: int = 3000,
                 batch_size: int = 512, lr: float = 0.02, max_grad_norm: float = 5.0,
                 generator: Optional[torch.Generator] = None) -> MentorNetwork:
    """Fit ``net`` to targets in [0, 1] with binary cross-entropy on its logits (Adam).

    Like the reference trainer: gradients clipped to global norm 5, learning rate ×0.9 every 10%
    of the steps. The reference runs 3·10⁴ steps of batch 32 at lr 0.1; larger batches let far
    fewer steps do on CPU.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(steps // 10, 1), gamma=0.9)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(features), (batch_size,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(net(features[idx]), targets[idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
        opt.step()
        sched.step()
    net.eval()
    return net


@torch.no_grad()
def evaluate_fit(net: MentorNetwork, features: Tensor, targets: Tensor) -> Dict[str, float]:
    """``accuracy`` = mean 1[(v > ½) = (v* > ½)], ``mae`` = mean |v − v*|."""
    v = net.weights(features)
    return dict(accuracy=float(((v > 0.5) == (targets > 0.5)).float().mean()),
                mae=float((v - targets).abs().mean()))


def fit_to_curriculum(curriculum: Curriculum, net: Optional[MentorNetwork] = None,
                      num_points: int = 100_000, steps: int = 3000, batch_size: int = 512,
                      lr: float = 0.02, seed: int = 0):
    """Train a MentorNet to mimic a predefined curriculum on the synthetic grid (MentorNet-PD).

    80% of the sampled grid trains, 20% is held out. Returns ``(net, metrics)`` with the held-out
    :func:`evaluate_fit` metrics.
    """
    gen = torch.Generator().manual_seed(seed)
    net = net if net is not None else MentorNetwork(seed=seed)
    feats, targets = curriculum_grid(curriculum, num_points, gen)
    n_train = int(0.8 * len(feats))
    train_mentor(net, feats[:n_train], targets[:n_train], steps, batch_size, lr, generator=gen)
    return net, evaluate_fit(net, feats[n_train:], targets[n_train:])


__all__ = ['OneStepBiLSTMCell', 'MentorNetwork', 'curriculum_grid', 'train_mentor',
           'evaluate_fit', 'fit_to_curriculum']
