"""Similarity transforms between the level-0 pixel frames of two scans of one specimen."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Transform:
    """Maps level-0 points p of a scan onto its reference scan: p_ref = scale · R(θ) · p + (tx, ty).

    R(θ) rotates in the (x right, y down) pixel frame: x' = cos θ·x − sin θ·y, y' = sin θ·x + cos θ·y.
    `scale` is mpp_scan / mpp_reference (known from the files, never estimated), so a 0.25 mpp scan
    maps onto a 0.5 mpp reference with scale 0.5. tx, ty are in reference level-0 pixels.
    """

    rotation_deg: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    scale: float = 1.0

    @property
    def matrix(self) -> np.ndarray:
        """The 2x2 linear part scale · R(θ)."""
        theta = np.deg2rad(self.rotation_deg)
        cos, sin = np.cos(theta), np.sin(theta)
        return self.scale * np.array([[cos, -sin], [sin, cos]])

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (n, 2) x, y points; returns float64 (n, 2)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return points @ self.matrix.T + np.array([self.tx, self.ty])

    def inverse(self) -> "Transform":
        """The transform from the reference frame back to this scan's frame."""
        inverse_matrix = np.linalg.inv(self.matrix)
        tx, ty = -inverse_matrix @ np.array([self.tx, self.ty])
        return Transform(rotation_deg=-self.rotation_deg, tx=float(tx), ty=float(ty), scale=1.0 / self.scale)

    def then(self, other: "Transform") -> "Transform":
        """This transform followed by `other` (other ∘ self)."""
        matrix = other.matrix @ self.matrix
        tx, ty = other.matrix @ np.array([self.tx, self.ty]) + np.array([other.tx, other.ty])
        return Transform(
            rotation_deg=_wrap(self.rotation_deg + other.rotation_deg),
            tx=float(tx),
            ty=float(ty),
            scale=float(np.sqrt(abs(np.linalg.det(matrix)))),
        )


def _wrap(angle: float) -> float:
    """Angle in (-180, 180]."""
    wrapped = (angle + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 else wrapped
