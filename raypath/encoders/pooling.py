"""Output rules: how a ViT's token sequence becomes one tile embedding."""

import torch
from torch import nn


class TokenPool(nn.Module):
    """CLS, CLS + mean of patch tokens (Virchow), or mean of patch tokens; registers excluded."""

    def __init__(self, rule: str, *, num_prefix_tokens: int) -> None:
        super().__init__()
        if rule not in ("cls", "cls+mean", "mean"):
            raise ValueError(f"TokenPool does not implement output rule {rule!r}")
        self.rule = rule
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        cls = tokens[:, 0]
        if self.rule == "cls":
            return cls
        patches = tokens[:, self.num_prefix_tokens:].mean(dim=1)
        return patches if self.rule == "mean" else torch.cat([cls, patches], dim=-1)


class AttentionalPooler(nn.Module):
    """open_clip/CONCH `AttentionalPooler`: learned queries cross-attend to the (normed) tokens.

    Parameter names match CONCH's checkpoint (`query`, `attn.*`, `ln_q`, `ln_k`).
    """

    def __init__(self, *, dim: int, context_dim: int, heads: int, queries: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(queries, dim))
        self.attn = nn.MultiheadAttention(dim, heads, kdim=context_dim, vdim=context_dim, batch_first=True)
        self.ln_q = nn.LayerNorm(dim)
        self.ln_k = nn.LayerNorm(context_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        keys = self.ln_k(tokens)
        query = self.ln_q(self.query).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        return self.attn(query, keys, keys, need_weights=False)[0]


class AttentionalPool(nn.Module):
    """CONCH's image embedding: pooler → first query → LayerNorm (→ contrastive projection)."""

    def __init__(self, *, context_dim: int, dim: int, heads: int, queries: int, project: bool) -> None:
        super().__init__()
        self.pooler = AttentionalPooler(dim=dim, context_dim=context_dim, heads=heads, queries=queries)
        self.ln = nn.LayerNorm(dim)
        # Always present so a CONCH checkpoint loads strictly whichever rule the card picks.
        self.proj = nn.Parameter(dim**-0.5 * torch.randn(dim, dim))
        self.project = project

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled = self.ln(self.pooler(tokens)[:, 0])
        return pooled @ self.proj if self.project else pooled
