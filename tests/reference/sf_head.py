"""PyTorch reference of the SF-Head module and its two losses (F-RL, F-CL), written from their
description (reference spec §2 and §3), for the parity fixtures of make_sfhead_fixture.py.

The module follows the released SF-Head layer: grouping, the SSTE branches (f_t, f_s), the three
AC-FA gates, the softmax fusion into f_r, concatenation and a 2-group channel shuffle. The losses
compare its chunk tensors per training sample. Running this file checks parameter counts, that the
unused `bn` gets no gradient, and finite-difference gradients of the losses and of a whole head:

    python tests/reference/sf_head.py
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Feature tensors a head hands to the losses, each (B·G, q, T, V).
CHUNKS = ("f_t", "f_s", "f_c", "f_o", "f_r")
# F-CL compares f_r against these, in this order.
CONSISTENCY_TARGETS = ("f_c", "f_s", "f_t", "f_o")


# ---------------------------------------------------------------------------------------------
# Module. Attribute names and registration order fix the state-dict keys and their order: the
# head's own parameters (cweight, cbias, sweight, sbias, w), then gn, cv, tc, tv and bn.


class GateConv(nn.Module):
    """The gate's 2 → 1 channel 7×7 convolution (zero padding 3, no bias), then BatchNorm2d(1)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, z):
        return self.bn(self.conv(z))


class AttentionGate(nn.Module):
    """Scale σ(BN(conv([max, mean]))) of a tensor whose pooled axis is dim 1; the result has size 1
    on that axis. The max routes its gradient to the index torch.max returns: the first on ties."""

    def __init__(self):
        super().__init__()
        self.conv = GateConv()

    def forward(self, p):
        z = torch.cat([p.max(dim=1, keepdim=True).values, p.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(z))


class SFHead(nn.Module):
    """SF-Head on a (B, C, T, V) feature map with G groups; q = C / (4G) channels per chunk.

    forward(y) returns (out, feats): out is the shuffled (B, C, T, V) output and feats holds the
    five chunk tensors f_t, f_s, f_c, f_o, f_r, each a contiguous (B·G, q, T, V) tensor whose item
    r = b·G + g.
    """

    def __init__(self, channels, groups=8):
        super().__init__()
        if channels % (4 * groups) != 0:
            raise ValueError(f"SF-Head needs channels divisible by 4·groups; got {channels} with {groups} groups")
        q = channels // (4 * groups)
        self.channels = channels
        self.groups = groups
        self.cweight = nn.Parameter(torch.zeros(1, q, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, q, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, q, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, q, 1, 1))
        self.w = nn.Parameter(torch.ones(4))
        self.gn = nn.GroupNorm(q, q)
        self.cv = AttentionGate()  # pools t; conv plane (k, v)
        self.tc = AttentionGate()  # pools v; conv plane (t, k)
        self.tv = AttentionGate()  # pools k; conv plane (t, v)
        self.bn = nn.BatchNorm2d(q)  # part of the released module, never used in its forward

    def forward(self, y):
        b, c, t, v = y.shape
        if c != self.channels:
            raise ValueError(f"SF-Head built for {self.channels} channels, got {c}")
        x = y.reshape(b * self.groups, c // self.groups, t, v)  # item r = b·G + g
        x1, x2, x3, x4 = x.chunk(4, dim=1)

        # SSTE: a per-(item, channel) gate from the (t, v) mean, and one from GroupNorm.
        f_t = x1 * torch.sigmoid(self.cweight * x1.mean(dim=(2, 3), keepdim=True) + self.cbias)
        f_s = x3 * torch.sigmoid(self.sweight * self.gn(x3) + self.sbias)
        f_c = x2.contiguous()
        f_o = x4.contiguous()

        # AC-FA: each gate sees its input with the pooled axis moved to dim 1.
        s1 = self.cv(f_t.permute(0, 2, 1, 3))  # (r, t, k, v) → (r, 1, k, v)
        x11 = f_t * s1.permute(0, 2, 1, 3)  # broadcast over t
        s2 = self.tc(f_s.permute(0, 3, 2, 1))  # (r, v, t, k) → (r, 1, t, k)
        x21 = f_s * s2.permute(0, 3, 2, 1)  # broadcast over v
        s3 = self.tv(f_c)  # (r, k, t, v) → (r, 1, t, v)
        x31 = f_c * s3  # broadcast over k
        omega = torch.softmax(self.w, dim=0)
        f_r = omega[0] * x11 + omega[1] * x21 + omega[2] * x31 + omega[3] * f_c

        # Concatenate per item, un-group, then shuffle: out[b, i] = F[b, (i mod 2)·C/2 + ⌊i/2⌋].
        fused = torch.cat([f_t, f_s, f_r, f_o], dim=1).reshape(b, c, t, v)
        out = fused.reshape(b, 2, c // 2, t, v).transpose(1, 2).reshape(b, c, t, v)
        feats = {"f_t": f_t, "f_s": f_s, "f_c": f_c, "f_o": f_o, "f_r": f_r}
        return out, {k: f.contiguous() for k, f in feats.items()}


def initialise(head, gen):
    """PyTorch's construction-time defaults, drawn from a seeded generator: cweight = sweight = 0,
    cbias = sbias = 1, w = 1, every norm γ = 1, β = 0 with fresh running statistics, and the gate
    convs kaiming_uniform(a = √5), i.e. U(−1/√fan_in, 1/√fan_in) with fan_in = 2·7·7."""
    with torch.no_grad():
        head.cweight.zero_()
        head.cbias.fill_(1.0)
        head.sweight.zero_()
        head.sbias.fill_(1.0)
        head.w.fill_(1.0)
        for module in head.modules():
            if isinstance(module, nn.Conv2d):
                bound = 1.0 / math.sqrt(module.weight[0].numel())
                module.weight.uniform_(-bound, bound, generator=gen)
            elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d)):
                module.weight.fill_(1.0)
                module.bias.zero_()
                if isinstance(module, nn.BatchNorm2d):
                    module.reset_running_stats()


# ---------------------------------------------------------------------------------------------
# Losses (spec §3). Every chunk is first flattened into one vector per item.


@dataclass(frozen=True)
class LossOptions:
    """Constants and switches of F-RL and F-CL; the defaults are the reference's."""

    alpha: float = 1.0  # modified cosine d = 1 − exp(−α(cos + 1))
    tau: float = 0.1  # F-RL temperature; logits κ·d with κ = margin / τ
    margin: float = 0.4  # m
    gamma: float = 2.0  # focal exponent of φ
    eps: float = 1e-4  # φ is applied only where min(δ, 1 − δ) > ε
    item: str = "sample"  # "sample" | "mean_persons" | "rows"
    phi_sign: str = "focal"  # "focal": φ = −(1−δ)^γ·log δ; "printed": φ = +(1−δ)^γ·log δ
    fcl_terms: str = "sum"  # "sum" | "mean" over the four F of F-CL
    heads: str = "mean"  # "mean" | "sum" over the attached heads
    lambda_con: float = 0.2
    lambda_red: float = 0.1

    def __post_init__(self):
        for name, allowed in [
            ("item", ("sample", "mean_persons", "rows")),
            ("phi_sign", ("focal", "printed")),
            ("fcl_terms", ("sum", "mean")),
            ("heads", ("mean", "sum")),
        ]:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")


def loss_items(feat, samples, persons, item="sample"):
    """(B·G, q, T, V) chunk, B = samples·persons → one row per loss item.

    sample: (N, persons·G·q·T·V), sample n's values over (M, G, q, T, V);
    mean_persons: (N, G·q·T·V), the mean over its persons; rows: (B·G, q·T·V).
    """
    assert feat.shape[0] % (samples * persons) == 0, "rows are (sample, person, group)"
    if item == "rows":
        return feat.reshape(feat.shape[0], -1)
    n = samples
    if item == "sample":
        return feat.reshape(n, -1)
    if item == "mean_persons":
        return feat.reshape(n, persons, -1).mean(dim=1)
    raise ValueError(f"unknown loss item {item!r}")


def _unit_rows(u):
    return u / u.norm(dim=1, keepdim=True).clamp_min(1e-8)


def modified_cosine(cos, alpha):
    """d = 1 − exp(−α(cos + 1)), computed as −expm1(−α(cos + 1))."""
    return -torch.expm1(-alpha * (cos + 1.0))


def redundancy_loss(s, t, options=LossOptions()):
    """F-RL: symmetric InfoNCE over the items, logits L_ij = κ·d(s_i, t_j), κ = m / τ, the positive
    in its own denominator; (1/2N)·Σ_i[−L_ii + logΣ_j e^{L_ij}] + (1/2N)·Σ_j[−L_jj + logΣ_i e^{L_ij}].
    s and t are (N, D) item rows."""
    kappa = options.margin / options.tau
    logits = kappa * modified_cosine(_unit_rows(s) @ _unit_rows(t).T, options.alpha)
    diagonal = logits.diagonal()
    rows = torch.logsumexp(logits, dim=1) - diagonal
    columns = torch.logsumexp(logits, dim=0) - diagonal
    return (rows.sum() + columns.sum()) / (2 * logits.shape[0])


def consistency_term(delta, options=LossOptions()):
    """ℓ(δ) = log(e^m + (1 − e^m)·δ) + φ(δ), with φ = ∓(1 − δ)^γ·log δ (focal: −, printed: +)
    where min(δ, 1 − δ) > ε, else 0."""
    em = math.exp(options.margin)
    gated = torch.minimum(delta, 1.0 - delta) > options.eps
    safe = torch.where(gated, delta, torch.full_like(delta, 0.5))  # keeps log finite off the gate
    phi = (1.0 - safe) ** options.gamma * torch.log(safe)
    if options.phi_sign == "focal":
        phi = -phi
    phi = torch.where(gated, phi, torch.zeros_like(phi))
    return torch.log(em + (1.0 - em) * delta) + phi


def consistency_loss(a, targets, options=LossOptions()):
    """F-CL: (1/N)·Σ_i Σ_F ℓ(d(a_i, F_i)) over the targets F (a list of (N, D) item rows); with
    fcl_terms = "mean" the four terms of an item are averaged instead of summed."""
    a_hat = _unit_rows(a)
    terms = []
    for f in targets:
        delta = modified_cosine((a_hat * _unit_rows(f)).sum(dim=1), options.alpha)
        terms.append(consistency_term(delta, options))
    per_item = torch.stack(terms, dim=1).sum(dim=1)
    if options.fcl_terms == "mean":
        per_item = per_item / len(targets)
    return per_item.mean()


def head_losses(feats, samples, persons, options=LossOptions()):
    """(L_con, L_red) of one head's feats; f_r against (f_c, f_s, f_t, f_o), and f_s against f_t."""
    rows = {k: loss_items(feats[k], samples, persons, options.item) for k in CHUNKS}
    con = consistency_loss(rows["f_r"], [rows[k] for k in CONSISTENCY_TARGETS], options)
    red = redundancy_loss(rows["f_s"], rows["f_t"], options)
    return con, red


def total_loss(logits, labels, feats_list, persons, options=LossOptions()):
    """CE + λ_con·L̄_con + λ_red·L̄_red, L̄ the mean (or sum) over the heads, no stop-gradient.

    Returns a dict: loss, ce, con, red (scalars; con and red are L̄ before λ) and con_heads,
    red_heads (one entry per head).
    """
    ce = F.cross_entropy(logits, labels)
    pairs = [head_losses(feats, logits.shape[0], persons, options) for feats in feats_list]
    con_heads = ce.new_zeros(0) if not pairs else torch.stack([con for con, _ in pairs])
    red_heads = ce.new_zeros(0) if not pairs else torch.stack([red for _, red in pairs])
    if not pairs:
        con = red = ce.new_zeros(())
    elif options.heads == "mean":
        con, red = con_heads.mean(), red_heads.mean()
    else:
        con, red = con_heads.sum(), red_heads.sum()
    loss = ce + options.lambda_con * con + options.lambda_red * red
    return {"loss": loss, "ce": ce, "con": con, "red": red, "con_heads": con_heads, "red_heads": red_heads}


# ---------------------------------------------------------------------------------------------
# Self-check.


def parameter_count(module):
    return sum(p.numel() for p in module.parameters())


def _gradcheck_head(gen):
    """Finite differences of a whole head in training mode (BN on batch statistics), float64, on
    every output and with respect to the input and every used parameter."""
    head = SFHead(16, groups=2).double().train()  # q = 2
    initialise(head, gen)
    with torch.no_grad():
        for name, p in head.named_parameters():
            if not name.startswith("bn."):
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    names = [k for k, _ in head.named_parameters() if not k.startswith("bn.")]
    params = [p.detach().clone().requires_grad_() for k, p in head.named_parameters() if k in names]
    y = torch.randn(3, 16, 5, 4, generator=gen, dtype=torch.float64).requires_grad_()

    def run(y, *ps):
        out, feats = torch.func.functional_call(head, dict(zip(names, ps)), (y,))
        return (out, *(feats[k] for k in CHUNKS))

    assert torch.autograd.gradcheck(run, (y, *params))


def _gradcheck_losses(gen):
    """Finite differences of F-RL and F-CL alone, for every item mode and both φ signs."""
    n, m, g, q, t, v = 3, 2, 2, 2, 2, 3

    def chunk(signed):
        x = torch.randn(n * m * g, q, t, v, generator=gen, dtype=torch.float64)
        return (x if signed else x.abs()).requires_grad_()

    for item in ("sample", "mean_persons", "rows"):
        options = LossOptions(item=item)
        s, tt = chunk(True), chunk(False)
        assert torch.autograd.gradcheck(
            lambda s, tt: redundancy_loss(loss_items(s, n, m, item), loss_items(tt, n, m, item), options), (s, tt)
        )
        for phi_sign in ("focal", "printed"):
            for fcl_terms in ("sum", "mean"):
                options = LossOptions(item=item, phi_sign=phi_sign, fcl_terms=fcl_terms)
                feats = [chunk(i % 2 == 0) for i in range(5)]
                assert torch.autograd.gradcheck(
                    lambda a, *fs: consistency_loss(
                        loss_items(a, n, m, item), [loss_items(f, n, m, item) for f in fs], options
                    ),
                    tuple(feats),
                )
    # The whole per-model combination, two heads.
    heads = [{k: chunk(False) for k in CHUNKS} for _ in range(2)]
    logits = torch.randn(n, 5, generator=gen, dtype=torch.float64).requires_grad_()
    labels = torch.tensor([0, 3, 1])
    flat = [heads[h][k] for h in range(2) for k in CHUNKS]

    def run(logits, *fs):
        fl = [dict(zip(CHUNKS, fs[h * 5 : h * 5 + 5])) for h in range(2)]
        return total_loss(logits, labels, fl, m)["loss"]

    assert torch.autograd.gradcheck(run, (logits, *flat))


def self_check():
    import ctrgcn  # deferred: ctrgcn imports this module

    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(0)

    counts = {c: parameter_count(SFHead(c)) for c in (64, 128, 256)}
    assert counts == {64: 320, 128: 336, 256: 368}, counts
    for c in (64, 128, 256):
        head = SFHead(c)
        q = c // 32
        used = sum(p.numel() for k, p in head.named_parameters() if not k.startswith("bn."))
        assert used == 6 * q + 304, (c, used)
    for bad in (48, 72, 100):
        try:
            SFHead(bad)
        except ValueError:
            continue
        raise AssertionError(f"SFHead({bad}) accepted")

    model = ctrgcn.build("ntu60", sf_head="tap")
    heads = parameter_count(model.sf_heads)
    total = parameter_count(model)
    assert heads == 3_392 and total == 1_450_064, (heads, total)
    keys = list(model.state_dict().keys())
    plain = list(ctrgcn.build("ntu60").state_dict().keys())
    assert keys[: len(plain)] == plain and all(k.startswith("sf_heads.") for k in keys[len(plain) :])

    # Shapes, and the unused bn gets no gradient while every used parameter does.
    head = SFHead(64).train()
    initialise(head, gen)
    y = torch.randn(4, 64, 6, 25, generator=gen).relu()
    out, feats = head(y)
    assert out.shape == y.shape
    assert all(feats[k].shape == (32, 2, 6, 25) and feats[k].is_contiguous() for k in CHUNKS)
    assert torch.equal(feats["f_c"], y.reshape(32, 8, 6, 25)[:, 2:4])
    # Odd output channels 2j + 1 hold F[C/2 + j]: groups 4…7, whose last chunk f_o is y unchanged.
    assert torch.equal(out[:, 1::2].reshape(4, 4, 8, 6, 25)[:, :, 6:8], y.reshape(4, 8, 8, 6, 25)[:, 4:, 6:8])
    con, red = head_losses(feats, samples=2, persons=2)
    (con + red + out.square().mean()).backward()
    assert head.bn.weight.grad is None and head.bn.bias.grad is None
    assert all(p.grad is not None for k, p in head.named_parameters() if not k.startswith("bn."))

    # Off the φ gate (δ within ε of 0 or 1) only the log term is left, and its gradient is finite.
    delta = torch.tensor([0.0, 0.5e-4, 1.0], dtype=torch.float64, requires_grad=True)
    ell = consistency_term(delta)
    ell.sum().backward()
    em = math.exp(0.4)
    assert torch.allclose(ell, torch.log(em + (1 - em) * delta.detach())) and torch.isfinite(delta.grad).all()

    _gradcheck_losses(gen)
    _gradcheck_head(gen)
    return counts, heads, total


if __name__ == "__main__":
    counts, heads, total = self_check()
    for c, n in counts.items():
        print(f"SF-Head at C = {c}: {n} parameters")
    print(f"ten heads on CTR-GCN: {heads:,}; CTR-GCN NTU60 + ten heads: {total:,}")
    print("unused bn gets no gradient; gradcheck of F-RL, F-CL, the total loss and a whole head passes")
