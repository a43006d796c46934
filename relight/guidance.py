"""SynthLight's three-term guidance (Eq. 2), as a pure function of the branch predictions.

Arguments of e(.) are (noisy latent, portrait, env map, text); 0 is a dropped
condition. The env map is kept in every branch:

    eps = e(x, 0, E, 0) + l_T [e(x, I, E, T) - e(x, I, E, 0)] + l_I [e(x, I, E, 0) - e(x, 0, E, 0)]

Without text the last branch is absent and the formula is the two-branch
``e(x, 0, E, 0) + l_I [e(x, I, E, 0) - e(x, 0, E, 0)]``.
"""

from __future__ import annotations

import torch

# Order of the branches in the batched forward pass: (portrait kept, text kept).
BRANCHES_WITH_TEXT = ((False, False), (True, False), (True, True))
BRANCHES_NO_TEXT = ((False, False), (True, False))


def combine(e_env: torch.Tensor, e_portrait: torch.Tensor, e_full: torch.Tensor | None,
            image_scale: float = 3.0, text_scale: float = 2.0) -> torch.Tensor:
    """``e_env`` = e(x,0,E,0), ``e_portrait`` = e(x,I,E,0), ``e_full`` = e(x,I,E,T) or None."""
    eps = e_env + image_scale * (e_portrait - e_env)
    if e_full is not None:
        eps = eps + text_scale * (e_full - e_portrait)
    return eps
