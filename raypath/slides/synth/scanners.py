"""Named scanner profiles: the technical (not biological) differences between digitisations.

The numbers are plausible, not measured: native 40x pixel sizes follow the vendors' published
specifications; stain, tone, blur and noise settings are chosen so that scanners differ visibly in
colour and sharpness, the way multi-centre cohorts do.
"""

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ScannerProfile:
    """How one scanner turns tissue into pixels."""

    name: str
    mpp_40x: float
    """Level-0 microns per pixel at 40x; 20x scans use twice this."""
    stain_scale: tuple[float, float, float]
    """Multiplies haematoxylin, eosin, DAB concentrations (HED colour shift)."""
    stain_bias: tuple[float, float, float]
    """Added to the HED concentrations after scaling."""
    gamma: float
    brightness: float
    blur_um: float
    """Gaussian point-spread sigma in microns (focus and optics)."""
    noise_sigma: float
    """Sensor noise, standard deviation in 8-bit intensity units."""
    jpeg_quality: int


PROFILES: dict[str, ScannerProfile] = {
    profile.name: profile
    for profile in (
        ScannerProfile(
            "aperio-gt450", 0.263, (1.00, 1.00, 1.0), (0.00, 0.00, 0.0), 1.00, 1.00, 0.35, 2.0, 80
        ),
        ScannerProfile(
            "hamamatsu-s360", 0.23, (1.15, 0.85, 1.0), (0.02, -0.01, 0.0), 0.90, 0.98, 0.55, 3.0, 85
        ),
        ScannerProfile(
            "philips-ultrafast", 0.25, (0.85, 1.20, 1.0), (-0.01, 0.03, 0.0), 1.10, 1.00, 0.45, 2.5, 75
        ),
        ScannerProfile("leica-at2", 0.252, (1.05, 1.10, 1.0), (0.03, 0.00, 0.01), 0.95, 0.96, 0.75, 4.0, 70),
        ScannerProfile(
            "3dhistech-p1000", 0.242, (0.95, 0.90, 1.0), (0.00, 0.02, 0.02), 1.05, 1.02, 0.50, 3.5, 80
        ),
        ScannerProfile(
            "ventana-dp200", 0.25, (1.20, 1.05, 1.0), (0.01, 0.01, 0.0), 0.92, 0.99, 0.60, 2.5, 90
        ),
    )
}


def strengthened(profile: ScannerProfile, strength: float) -> ScannerProfile:
    """The profile with its colour and tone deviations from a neutral scanner scaled by `strength`
    (1 = as specified, 0 = neutral): a knob for how large the scanner effect in a cohort is."""
    if strength == 1.0:
        return profile
    def towards(value: float, neutral: float) -> float:
        return neutral + strength * (value - neutral)
    return dataclasses.replace(
        profile, stain_scale=tuple(towards(v, 1.0) for v in profile.stain_scale),
        stain_bias=tuple(towards(v, 0.0) for v in profile.stain_bias), gamma=towards(profile.gamma, 1.0),
        brightness=towards(profile.brightness, 1.0))


def get_profile(name: str) -> ScannerProfile:
    """The named profile; the error lists the known names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown scanner profile '{name}'; known: {sorted(PROFILES)}") from None
