r"""Square Attack (Andriushchenko et al. 2020), L-inf: a black-box attack that only reads logits.

Written from the paper ("Square Attack: a query-efficient black-box adversarial attack via
random search", ECCV 2020, Algorithms 1 and 2). It never takes a gradient, so a model whose
gradients are useless (zero, shattered, NaN) cannot hide from it: where Square fools images
that the white-box attacks did not, those attacks were misled (gradient masking).

Per image, random search on the margin loss L(x) = z_y(x) - max_{k != y} z_k(x), which is
below 0 exactly when x is misclassified:

- start: vertical stripes one pixel wide, each column's colour drawn from {-eps, +eps}^C, added
  to x and clipped to [0, 1] (one query);
- each further query: a square window of side h (the same for the whole batch, at a position
  drawn per image) takes a colour drawn from {-eps, +eps}^C: the window of x + delta is set to
  clip(x + colour, 0, 1) (the paper's delta = +-2 eps, projected onto the ball: the same point).
  The candidate is kept when its margin is lower than the best so far;
- the side: h = the integer nearest sqrt(p * H * W), at least 1 and at most min(H, W), where p
  starts at ``p_init`` and halves after queries 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000
  of a 10,000-query budget, those points scaled to the budget given;
- an image stops when it is misclassified or its ``queries`` are used (the start included).

``p_init`` = 0.8 is AutoAttack's value for L-inf (the paper's own experiments used 0.05 on
ImageNet); ``queries`` = 5000 is AutoAttack's budget.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import _check_batch, _check_eps, _check_logits, _check_norm, eval_mode

__all__ = ["HALVINGS", "margin_loss", "square", "square_fraction"]

#: Queries after which p halves, for a budget of 10,000 (scaled to other budgets).
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_fraction(query: int, queries: int, p_init: float = 0.8) -> float:
    """p, the share of the image's pixels in the window, at ``query`` (1-based) of a budget of ``queries``.

    Example::

        >>> [square_fraction(q, 10_000) for q in (1, 10, 11, 51, 9000)]
        [0.8, 0.8, 0.4, 0.2, 0.0015625]
        >>> square_fraction(6, 1000)  # query 6 of 1,000 is query 60 of 10,000
        0.2
    """
    scaled = int(query * 10_000 / queries)
    return p_init / 2 ** sum(scaled > h for h in HALVINGS)


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """z_y - max_{k != y} z_k per sample (N,): below 0 when misclassified.

    Example::

        >>> margin_loss(torch.tensor([[2.0, 3.0, -1.0]]), torch.tensor([0]))
        tensor([-1.])
    """
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y - others.amax(dim=1)


def _randint(high: int, size: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, size, generator=generator, device=gen_device).to(device)


def square(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str = "linf",
    queries: int = 5000,
    p_init: float = 0.8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Square Attack, L-inf, untargeted, on the margin loss; at most ``queries`` model calls per image.

    Args:
        model (nn.Module): returns logits (N, C) for images (N, C, H, W) in [0, 1]; run in
            eval mode and never differentiated.
        x (Tensor): (N, C, H, W) images in [0, 1].
        y (Tensor): (N,) integer labels.
        eps (float): L-inf radius in [0, 1] pixel units.
        norm (str): "linf" only. Default: "linf".
        queries (int): the budget per image, the first (striped) point included. Default: 5000.
        p_init (float): the window's initial share of the pixels, in (0, 1]. Default: 0.8.
        generator (torch.Generator | None): source of the stripes, windows and colours.
            Default: None (the global RNG).

    Returns:
        Tensor: (N, C, H, W) points within eps of x in [0, 1], detached: the lowest-margin
        point found for each image (misclassified where the attack succeeded).
    """
    _check_batch(x, y)
    _check_norm(norm)
    if norm != "linf":
        raise ValueError(f"the Square attack here is L-inf only, got norm {norm!r}")
    eps = _check_eps(eps, norm, x[0].numel())
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise ValueError(f"queries must be a positive int, got {queries!r}")
    if not (isinstance(p_init, (int, float)) and 0 < p_init <= 1):
        raise ValueError(f"p_init must lie in (0, 1], got {p_init!r}")
    if x.ndim != 4:
        raise ValueError(f"the Square attack needs images (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    n, channels, height, width = x.shape
    device = x.device
    with eval_mode(model), torch.no_grad():
        # start: one colour per (image, channel, column), constant down the column
        stripes = _randint(2, (n, channels, 1, width), generator, device).to(x.dtype) * 2 - 1
        best = (x + eps * stripes).clamp(0.0, 1.0)
        logits = model(best)
        _check_logits(logits, y)
        margin = margin_loss(logits, y)
        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)
        for query in range(2, queries + 1):
            active = (margin >= 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            m = active.numel()
            p = square_fraction(query - 1, queries, p_init)
            side = min(max(round(math.sqrt(p * height * width)), 1), height, width)
            top = _randint(height - side + 1, (m,), generator, device)
            left = _randint(width - side + 1, (m,), generator, device)
            colour = (_randint(2, (m, channels, 1, 1), generator, device).to(x.dtype) * 2 - 1) * eps
            in_rows = (rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + side)
            in_cols = (cols[None, :] >= left[:, None]) & (cols[None, :] < left[:, None] + side)
            window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (m, 1, H, W)
            xa = x[active]
            candidate = torch.where(window, (xa + colour).clamp(0.0, 1.0), best[active])
            new_margin = margin_loss(model(candidate), y[active])
            better = new_margin < margin[active]
            keep = active[better]
            best[keep] = candidate[better]
            margin[keep] = new_margin[better]
    return best
