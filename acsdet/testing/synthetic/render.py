"""Rendering step of the synthetic DeepLesion: CT phantoms (anatomy by region, smooth along z)
and lobulated 3D lesions as soft-edged shapes, drawn into HU slices."""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np


@dataclass
class Shape:
    """An elliptic cylinder/ellipsoid in mm: centre (x, y, z), semi-axes (a, b, c), angle (rad).

    ``c`` = inf for structures running along z; ``grow`` scales (a, b) linearly with z (mm^-1);
    ``drift`` moves the centre per mm of z; ``lobes`` modulate the radius with angle.
    """
    name: str
    hu: float
    x: float
    y: float
    a: float
    b: float
    z: float = 0.0
    c: float = np.inf
    angle: float = 0.0
    grow: float = 0.0
    drift: Tuple[float, float] = (0.0, 0.0)
    lobes: Tuple[Tuple[float, float, float], ...] = ()  # (order k, amplitude, phase)
    lesion_type: int = 7
    relative: bool = False  # hu is added to what lies beneath (lesions)

    def section(self, z: float):
        """(cx, cy, a, b) of the cross-section at z, or None."""
        dz = z - self.z
        if np.isfinite(self.c):
            if abs(dz) >= self.c:
                return None
            f = np.sqrt(1 - (dz / self.c)**2)
        else:
            f = max(0.05, 1 + self.grow * dz)
        return self.x + self.drift[0] * dz, self.y + self.drift[1] * dz, self.a * f, self.b * f

    def coverage(self, z, xs, ys, px):
        """Soft (anti-aliased) coverage in [0, 1] on the grid ``xs`` (W,), ``ys`` (H,) in mm,
        restricted to the shape's bounding box: returns (coverage, (r0, r1, c0, c1)) or None."""
        sec = self.section(z)
        if sec is None:
            return None
        cx, cy, a, b = sec
        rmax = max(a, b) * (1 + sum(abs(lobe[1]) for lobe in self.lobes)) + 2 * px
        c0, c1 = np.searchsorted(xs, [cx - rmax, cx + rmax])
        r0, r1 = np.searchsorted(ys, [cy - rmax, cy + rmax])
        if c1 <= c0 or r1 <= r0:
            return None
        dx = xs[None, c0:c1] - cx
        dy = ys[r0:r1, None] - cy
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        u, v = dx * ca + dy * sa, -dx * sa + dy * ca
        rho = np.sqrt((u / a)**2 + (v / b)**2)
        if self.lobes:
            phi = np.arctan2(v / b, u / a)
            rho = rho / (1 + sum(amp * np.cos(k * phi + ph) for k, amp, ph in self.lobes))
        # signed distance to the boundary in pixels, approximately; a 1-pixel linear ramp
        dist = (1 - rho) * min(a, b) / px
        return np.clip(dist + 0.5, 0, 1), (r0, r1, c0, c1)


def organ_shapes(rng, region: str, body_a: float, body_b: float) -> List[Shape]:
    """Anatomy in mm around the body centre (x to the patient's left, y posterior)."""
    j = lambda s=0.06: 1 + rng.uniform(-s, s)  # noqa: E731
    A, B = body_a, body_b
    g = rng.uniform(-0.002, 0.002)
    shapes = [
        Shape('body', -100, 0, 0, A, B, grow=g, lesion_type=7),
        Shape(
            'muscle', 45, 0, 0.02 * B, A * 0.9 * j(0.03), B * 0.88 * j(0.03), grow=g, lesion_type=7)
    ]
    spine_y = 0.62 * B
    if region == 'chest':
        for side in (-1, 1):
            shapes.append(
                Shape(
                    'lung',
                    -850,
                    side * 0.45 * A,
                    -0.05 * B,
                    0.33 * A * j(),
                    0.62 * B * j(),
                    angle=side * 0.1,
                    grow=rng.uniform(-0.004, 0.004),
                    lesion_type=5))
        shapes += [
            Shape(
                'mediastinum',
                40,
                0.02 * A,
                -0.15 * B,
                0.22 * A * j(),
                0.42 * B * j(),
                lesion_type=3),
            Shape(
                'aorta',
                180 + rng.uniform(0, 80),
                0.08 * A,
                0.25 * B,
                11 * j(),
                11 * j(),
                drift=(0.0, -0.02),
                lesion_type=3)
        ]
    elif region == 'abdomen':
        shapes += [
            Shape(
                'liver',
                60 + rng.uniform(-10, 20),
                -0.38 * A,
                -0.05 * B,
                0.45 * A * j(),
                0.62 * B * j(),
                angle=0.3,
                grow=rng.uniform(-0.006, 0.002),
                lesion_type=4),
            Shape(
                'spleen',
                50,
                0.55 * A,
                0.25 * B,
                0.18 * A * j(),
                0.3 * B * j(),
                angle=-0.6,
                lesion_type=2),
            Shape('bowel', 35, 0.15 * A, -0.35 * B, 0.3 * A * j(), 0.3 * B * j(), lesion_type=2),
            Shape(
                'aorta',
                150 + rng.uniform(0, 80),
                0.05 * A,
                0.4 * B,
                10 * j(),
                10 * j(),
                lesion_type=2)
        ]
        for side in (-1, 1):
            shapes.append(
                Shape(
                    'kidney',
                    150 + rng.uniform(-20, 40),
                    side * 0.42 * A,
                    0.45 * B,
                    0.13 * A * j(),
                    0.22 * B * j(),
                    angle=side * 0.4,
                    c=rng.uniform(45, 70),
                    z=rng.uniform(-10, 10),
                    lesion_type=6))
        for _ in range(rng.integers(2, 5)):
            shapes.append(
                Shape(
                    'gas',
                    -900,
                    rng.uniform(-0.2, 0.5) * A,
                    rng.uniform(-0.5, -0.1) * B,
                    rng.uniform(4, 12),
                    rng.uniform(4, 10),
                    c=rng.uniform(8, 25),
                    z=rng.uniform(-30, 30),
                    lesion_type=2))
    else:  # pelvis
        shapes += [
            Shape(
                'bladder',
                10,
                0,
                -0.3 * B,
                0.25 * A * j(),
                0.3 * B * j(),
                c=rng.uniform(50, 80),
                lesion_type=8),
            Shape('pelvic fat', -60, 0, 0.1 * B, 0.3 * A, 0.25 * B, lesion_type=8)
        ]
        for side in (-1, 1):
            shapes.append(
                Shape(
                    'iliac',
                    550,
                    side * 0.55 * A,
                    0.25 * B,
                    0.18 * A * j(),
                    0.35 * B * j(),
                    angle=side * 0.5,
                    lesion_type=1))
            shapes.append(
                Shape(
                    'iliac marrow',
                    200,
                    side * 0.55 * A,
                    0.25 * B,
                    0.13 * A,
                    0.28 * B,
                    angle=side * 0.5,
                    lesion_type=1))
    shapes += [
        Shape('vertebra', 650, 0, spine_y, 17 * j(), 15 * j(), lesion_type=1),
        Shape('vertebra marrow', 220, 0, spine_y, 13, 11, lesion_type=1)
    ]
    return shapes


def vessels(rng, shapes: List[Shape]) -> List[Shape]:
    """Small contrast vessels running roughly along z inside lungs and liver."""
    out = []
    for s in shapes:
        if s.name in ('lung', 'liver'):
            for _ in range(rng.integers(6, 14)):
                r, t = np.sqrt(rng.uniform(0, 0.8)), rng.uniform(0, 2 * np.pi)
                out.append(
                    Shape(
                        'vessel',
                        40 if s.name == 'lung' else 160,
                        s.x + r * s.a * np.cos(t),
                        s.y + r * s.b * np.sin(t),
                        rng.uniform(1.0, 3.0),
                        rng.uniform(1.0, 3.0),
                        drift=tuple(rng.uniform(-0.3, 0.3, 2)),
                        lesion_type=s.lesion_type))
    return out


LESION_ORGANS = {
    'chest': ['lung', 'lung', 'lung', 'mediastinum', 'muscle', 'vertebra marrow'],
    'abdomen': ['liver', 'liver', 'liver', 'kidney', 'spleen', 'bowel', 'muscle'],
    'pelvis': ['bladder', 'pelvic fat', 'iliac marrow', 'muscle']
}


def make_lesion(rng, organ: Shape, z: float, px: float, size_mm=(3.0, 60.0)) -> Shape:
    sec = organ.section(z)
    cx, cy, a, b = sec
    room = min(a, b)
    long_d = float(np.exp(rng.uniform(np.log(size_mm[0]), np.log(size_mm[1]))))
    long_d = min(long_d, max(3.0, 1.4 * room))
    long_d = max(long_d, 3.0, 3.5 * px)
    ratio = rng.uniform(0.5, 1.0)
    r, t = np.sqrt(rng.uniform(0, 0.4)), rng.uniform(0, 2 * np.pi)
    x, y = cx + r * a * np.cos(t) * 0.7, cy + r * b * np.sin(t) * 0.7
    if organ.name == 'lung':
        hu = rng.uniform(-50, 60) - organ.hu  # solid nodule in air
    elif organ.name in ('vertebra marrow', 'iliac marrow'):
        hu = rng.choice([-1, 1]) * rng.uniform(120, 300)  # lytic or sclerotic
    else:
        hu = rng.choice([-1, 1], p=[0.7, 0.3]) * rng.uniform(25, 80)
    lobes = tuple((k, rng.uniform(0, 0.12), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    return Shape(
        'lesion',
        float(hu),
        x,
        y,
        long_d / 2,
        long_d / 2 * ratio,
        z=z + rng.uniform(-0.15, 0.15) * long_d / 2,
        c=long_d / 2 * rng.uniform(0.6, 1.1),
        angle=rng.uniform(0, np.pi),
        lobes=lobes,
        lesion_type=organ.lesion_type,
        relative=True)


def render_slice(shapes: Sequence[Shape],
                 z: float,
                 size: int,
                 px: float,
                 rng,
                 noise_hu: float = 12.0) -> np.ndarray:
    """HU image (float32, ``size`` x ``size``) of the axial slice at ``z`` mm."""
    coords = (np.arange(size) - (size - 1) / 2) * px
    img = np.full((size, size), -1000.0, np.float32)
    for s in shapes:
        cov = s.coverage(z, coords, coords, px)
        if cov is None:
            continue
        c, (r0, r1, c0, c1) = cov
        patch = img[r0:r1, c0:c1]
        target = patch + s.hu if s.relative else s.hu
        patch += (target - patch) * c
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    img += rng.normal(0, noise_hu, img.shape).astype(np.float32)
    return img
