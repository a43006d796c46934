"""Bit-reproducible float math for the head generator, hair strands and face regions.

Why this exists: head GLBs are identified by the sha256 of their bytes, so
`write_head_glb` must produce the same bytes for the same params on every
x86-64 CPU. Two parts of numpy do not guarantee that:

* BLAS. `@`, np.dot, matmul, einsum and np.linalg.norm of a vector go to
  OpenBLAS (or numpy's own SIMD sum-of-products), whose kernel is chosen at
  run time from the CPU (OPENBLAS_CORETYPE): the kernels sum in different
  orders and some use FMA, so the last bit of a product differs.
* numpy's runtime-dispatched SIMD loops for transcendentals (sin, cos, exp,
  log, arctan2, arcsin, tanh, hypot, power with a non-trivial exponent): the
  AVX512, AVX2 and baseline SSE paths are different algorithms (SVML,
  Highway, libm) and round differently in the last ULP. The same holds for
  the FMA and non-FMA ifunc variants of glibc's libm behind `math.*`.

Marching cubes and quadric decimation turn a single-ULP change of the
distance field into different topology, so "close" is not enough.

Everything here is built only from operations IEEE 754 rounds exactly and
that numpy evaluates elementwise with no reassociation whatever the SIMD
width: + - * /, sqrt, rint/floor, ldexp/frexp, abs, min/max, where, clip,
copysign. Sums have a fixed, written-out order (three terms, never
np.sum/np.dot over an axis), polynomials are evaluated by Horner's rule
with coefficients computed exactly (fractions) at import, and range
reductions are the classic Cody-Waite ones with constants split so that the
products that matter are exact. All work is done in float64; where the
caller's arrays are float32 the result is rounded back to float32 (the SDF
works in float32). Accuracy is a few ULP in float64 over the ranges the
generator uses (see each function); tests/test_heads.py checks that against
numpy.

Ranges: sin/cos are accurate for |x| < 2**19 (the reduction uses a
three-part pi/2 and an exact k * P1); exp/log/power/tanh cover all finite
float64 inputs (power carries e * log x in double-double, so its error does
not grow with |e * log x|); arctan2/arcsin/hypot expect finite inputs
(hypot: |x|, |y| below 1e150 so x*x does not overflow).
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import numpy as np

__all__ = ["arcsin", "arctan2", "cos", "cross", "dot3", "exp", "expm1", "hypot", "length",
           "log", "matmul", "normalize", "power", "radians", "sin", "sincos", "tanh", "vertex_normals"]

_F64 = np.float64


def _coef(q: Fraction) -> float:
    """Correctly rounded float of an exact rational (pure integer arithmetic)."""
    return float(q)


# Taylor coefficients, exact rationals rounded once.
_EXP_C = [_coef(Fraction(1, factorial(k))) for k in range(14)]            # |r| <= ln2/2
_EXPM1_C = [_coef(Fraction(1, factorial(k))) for k in range(2, 17)]       # |r| < 0.35, from r^2
_SIN_C = [_coef(Fraction((-1) ** k, factorial(2 * k + 1))) for k in range(1, 10)]   # |r| <= pi/4
_COS_C = [_coef(Fraction((-1) ** k, factorial(2 * k))) for k in range(1, 11)]
_LOG_C = [_coef(Fraction(2, 2 * k + 1)) for k in range(1, 13)]           # s^2 <= 0.0295
_ATAN_C = [_coef(Fraction((-1) ** k, 2 * k + 1)) for k in range(1, 8)]    # |t| <= 1/16

# Cody-Waite splits (fdlibm values). LN2_HI and PIO2_1 / PIO2_2 have 32-33
# significant bits, so k * LN2_HI (|k| < 2^11) and k * PIO2_x (|k| < 2^20) are exact.
_LN2_HI = float.fromhex("0x1.62e42feep-1")
_LN2_LO = 1.9082149292705877e-10
_INV_LN2 = 1.4426950408889634
_PIO2_1 = float.fromhex("0x1.921fb544p+0")
_PIO2_2 = float.fromhex("0x1.0b4611a6p-34")
_PIO2_3 = float.fromhex("0x1.3198a2e037073p-69")
_TWO_OVER_PI = 0.6366197723675814
_PI_HI, _PI_LO = 3.141592653589793, 1.2246467991473532e-16
_PIO2_HI, _PIO2_LO = 1.5707963267948966, 6.123233995736766e-17
_SQRT_HALF = 0.7071067811865476
# atan(i/8), i = 0..8, as hi + lo (computed with mpmath at 300 bits)
_ATAN_HI = np.array([float.fromhex(h) for h in (
    "0x0.0p+0", "0x1.fd5ba9aac2f6ep-4", "0x1.f5b75f92c80ddp-3", "0x1.6f61941e4def1p-2",
    "0x1.dac670561bb4fp-2", "0x1.1e00babdefeb4p-1", "0x1.4978fa3269ee1p-1",
    "0x1.700a7c5784634p-1", "0x1.921fb54442d18p-1")])
_ATAN_LO = np.array([float.fromhex(h) for h in (
    "0x0.0p+0", "-0x1.cd37686760c17p-59", "0x1.8ab6e3cf7afbdp-57", "-0x1.c63aae6f6e918p-56",
    "0x1.a2b7f222f65e2p-56", "-0x1.928df287a668fp-58", "0x1.2419a87f2a458p-56",
    "-0x1.8c34d25aadef6p-56", "0x1.1a62633145c07p-55")])


# ------------------------------------------------------------------ helpers --

def _dtype(*xs) -> np.dtype:
    """float32 if the caller works in float32 (python scalars are weak), else float64."""
    dt = np.result_type(*[x if isinstance(x, (float, int)) else np.asarray(x) for x in xs])
    return np.dtype(np.float32) if dt == np.float32 else np.dtype(_F64)


def _out(r: np.ndarray, dt: np.dtype):
    r = r.astype(dt, copy=False) if r.dtype != dt else r
    return r[()] if r.ndim == 0 else r


def _horner(z: np.ndarray, coefs) -> np.ndarray:
    """c0 + z*(c1 + z*(c2 + ...)), innermost first: a fixed order of IEEE ops."""
    acc = np.full_like(z, coefs[-1])
    for c in reversed(coefs[:-1]):
        acc = acc * z + c
    return acc


# ------------------------------------------------------- linear algebra ----
# numpy sends these to BLAS / einsum kernels chosen at run time; written out
# as elementwise column sums they round the same everywhere.

def matmul(a, m):
    """a @ m for a (..., 3) and m (3, 3) or (3,), summed as x*m0 + y*m1 + z*m2.

    The result has a's precision (float32 points times a float64 rotation
    give float32, as `a @ m.astype(a.dtype)` did, but rounded once).
    """
    dt = _dtype(a)
    a = np.asarray(a, dtype=_F64)
    m = np.asarray(m, dtype=_F64)
    x, y, z = a[..., 0], a[..., 1], a[..., 2]
    if m.ndim == 1:
        return _out(x * m[0] + y * m[1] + z * m[2], dt)
    out = np.empty(a.shape[:-1] + (m.shape[1],), dtype=_F64)
    for j in range(m.shape[1]):
        out[..., j] = x * m[0, j] + y * m[1, j] + z * m[2, j]
    return _out(out, dt)


def dot3(a, b):
    """Row-wise dot product of (..., 3) vectors (b may broadcast, e.g. (3,))."""
    dt = _dtype(a, b)
    a = np.asarray(a, dtype=_F64)
    b = np.asarray(b, dtype=_F64)
    return _out(a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2], dt)


def length(v):
    """Euclidean length of (..., 3) vectors (np.linalg.norm of a vector is a BLAS dot)."""
    dt = _dtype(v)
    v = np.asarray(v, dtype=_F64)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return _out(np.sqrt(x * x + y * y + z * z), dt)


def cross(a, b):
    """Cross product of (..., 3) vectors, in float64."""
    dt = _dtype(a, b)
    a = np.asarray(a, dtype=_F64)
    b = np.asarray(b, dtype=_F64)
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return _out(np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1), dt)


def normalize(v, eps: float = 0.0):
    """v / max(|v|, eps) row-wise (trimesh.util.unitize uses np.dot)."""
    dt = _dtype(v)
    v = np.asarray(v, dtype=_F64)
    n = np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + v[..., 2] * v[..., 2])
    if eps > 0.0:
        n = np.maximum(n, eps)
    return _out(v / n[..., None], dt)


def vertex_normals(verts, faces) -> np.ndarray:
    """Unit vertex normals, each face's unit normal weighted by its corner angle.

    The weighting of trimesh's `vertex_normals` (Thuerrner & Wuethrich), but
    with portable arithmetic: angles by arctan2(|e1 x e2|, e1 . e2) and the
    accumulation by np.add.at, whose order (face order, corner 0..2) is fixed.
    Vertices no (non-degenerate) face uses get a zero normal.
    """
    v = np.asarray(verts, dtype=_F64)
    f = np.asarray(faces, dtype=np.int64)
    p = v[f]                                          # (F, 3, 3)
    fn = cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    fl = length(fn)
    ok = fl > 0.0
    unit = fn[ok] / fl[ok][:, None]
    acc = np.zeros((len(v), 3), dtype=_F64)
    for c in range(3):
        e1 = p[ok, (c + 1) % 3] - p[ok, c]
        e2 = p[ok, (c + 2) % 3] - p[ok, c]
        ang = arctan2(length(cross(e1, e2)), dot3(e1, e2))
        np.add.at(acc, f[ok, c], unit * ang[:, None])
    n = length(acc)
    return np.where(n[:, None] > 0.0, acc / np.where(n > 0.0, n, 1.0)[:, None], 0.0)


# -------------------------------------------------------- exponential -------
# numpy's exp/log/power/tanh are SIMD-dispatched (AVX512F/AVX2/baseline
# paths round differently); math.exp & co. use glibc's FMA ifunc variants.

def _exp64(x: np.ndarray, x_lo: np.ndarray | None = None) -> np.ndarray:
    """exp(x + x_lo) in float64: x = k ln2 + r, |r| <= ln2/2, degree-13 Taylor, times 2^k. <= 1 ULP.

    x_lo (optional, |x_lo| << ulp(x)) is a low-order part added to r.
    """
    nan = np.isnan(x)
    xc = np.clip(np.where(nan, 0.0, x), -746.0, 710.0)
    k = np.rint(xc * _INV_LN2)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    if x_lo is not None:
        r = r + np.where(nan, 0.0, x_lo)
    p = _horner(r, _EXP_C)
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(p, k.astype(np.int32))
    return np.where(nan, np.nan, out) if nan.any() else out


def exp(x):
    """e**x (all finite inputs; overflows to inf above 709.78, underflows to 0)."""
    dt = _dtype(x)
    return _out(_exp64(np.asarray(x, dtype=_F64)), dt)


def expm1(x):
    """e**x - 1 with full relative accuracy near 0 (Taylor for |x| < 0.35, else exp(x) - 1)."""
    dt = _dtype(x)
    x = np.asarray(x, dtype=_F64)
    small = np.abs(x) < 0.35
    xs = np.where(small, x, 0.0)
    poly = xs + (xs * xs) * _horner(xs, _EXPM1_C)
    return _out(np.where(small, poly, _exp64(x) - 1.0), dt)


def _log64(x: np.ndarray, split: bool = False):
    """log in float64 (fdlibm's scheme): x = m 2^e, m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s).

    With split=True returns (hi, lo), hi + lo = log x to ~1e-16 absolute
    error whatever the size of log x (for power).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = ~(x > 0.0) | np.isinf(x)
        xs = np.where(bad, 1.0, x)
        m, e = np.frexp(xs)                          # m in [0.5, 1), exact
        lowm = m < _SQRT_HALF
        m = np.where(lowm, m * 2.0, m)
        dk = e.astype(_F64) - lowm
        f = m - 1.0                                  # exact (Sterbenz)
        s = f / (2.0 + f)
        z = s * s
        R = z * _horner(z, _LOG_C)
        hfsq = 0.5 * f * f
        if split:
            a = dk * _LN2_HI                         # exact
            t = dk * _LN2_LO + (f - (hfsq - s * (hfsq + R)))
            hi = a + t                               # TwoSum: lo is the rounding error of hi
            bb = hi - a
            lo = (a - (hi - bb)) + (t - bb)
        else:
            hi = dk * _LN2_HI - ((hfsq - (s * (hfsq + R) + dk * _LN2_LO)) - f)
        if bad.any():
            hi = np.where(x == 0.0, -np.inf, hi)
            hi = np.where(x < 0.0, np.nan, hi)
            hi = np.where(np.isnan(x), np.nan, hi)
            hi = np.where(x == np.inf, np.inf, hi)
            if split:
                lo = np.where(bad, 0.0, lo)
    return (hi, lo) if split else hi


def _split(a):
    """Veltkamp split: a = hi + lo exactly, each with <= 26 significant bits."""
    c = a * 134217729.0                              # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


def log(x):
    """Natural logarithm: <= 1 ULP; log(0) = -inf, log(<0) = nan."""
    dt = _dtype(x)
    return _out(_log64(np.asarray(x, dtype=_F64)), dt)


def power(x, e):
    """x ** e for a scalar exponent e.

    Integer e (|e| <= 64): repeated multiplication in a fixed order (x*x*x...),
    1/x**|e| for negative e. Otherwise exp(e * log x) for x > 0, 0 (e > 0) or
    inf (e < 0) at x == 0, nan for x < 0.
    """
    dt = _dtype(x)
    x = np.asarray(x, dtype=_F64)
    e = float(e)
    if e.is_integer() and abs(e) <= 64:
        n = int(abs(e))
        out = np.ones_like(x)
        if n:
            out = x.copy()
            for _ in range(n - 1):
                out = out * x
        if e < 0:
            with np.errstate(divide="ignore"):
                out = 1.0 / out
        return _out(out, dt)
    # e * log x carried in double-double (Dekker's exact product, no FMA), so
    # the error stays ~1 ULP instead of growing with |e * log x|.
    with np.errstate(invalid="ignore", over="ignore"):
        lh, ll = _log64(x, split=True)
        fin = np.isfinite(lh)
        lh0 = np.where(fin, lh, 0.0)
        ph = e * lh0
        eh, el = _split(e)
        ah, al = _split(lh0)
        perr = ((eh * ah - ph) + eh * al + el * ah) + el * al
        out = _exp64(np.where(fin, ph, e * lh), perr + e * ll)
        out = np.where(x == 0.0, 0.0 if e > 0 else np.inf, out)
    return _out(out, dt)


def tanh(x):
    """tanh via expm1(2|x|): e/(e+2) below 0.55, 1 - 2/(exp(2|x|)+1) above; odd."""
    dt = _dtype(x)
    x = np.asarray(x, dtype=_F64)
    a = np.abs(x)
    small = a < 0.55
    em1 = np.asarray(expm1(np.where(small, 2.0 * a, 0.0)), dtype=_F64)
    t_small = em1 / (em1 + 2.0)
    t_big = 1.0 - 2.0 / (_exp64(np.where(small, 0.0, np.minimum(2.0 * a, 80.0))) + 1.0)
    return _out(np.copysign(np.where(small, t_small, t_big), x), dt)


# ---------------------------------------------------------- trigonometry ----
# numpy's float64 sin/cos/arctan2/arcsin go to SVML under AVX512 and to other
# code elsewhere; float32 ones have their own SIMD polynomials.

def _sincos64(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) in float64, |x| < 2^19: r = x - k pi/2 (3-part Cody-Waite), Taylor on |r| <= pi/4."""
    k = np.rint(x * _TWO_OVER_PI)
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    z = r * r
    s = r + (r * z) * _horner(z, _SIN_C)
    c = 1.0 + z * _horner(z, _COS_C)
    q = np.where(np.isfinite(k), k, 0.0).astype(np.int64) & 3
    # quadrant q: sin = (s, c, -s, -c)[q], cos = (c, -s, -c, s)[q]
    sin = np.where(q & 1, c, s)
    cos = np.where(q & 1, s, c)
    sin = np.where(q & 2, -sin, sin)
    cos = np.where((q == 1) | (q == 2), -cos, cos)
    return sin, cos


def sincos(x):
    """(sin x, cos x) from one range reduction."""
    dt = _dtype(x)
    s, c = _sincos64(np.asarray(x, dtype=_F64))
    return _out(s, dt), _out(c, dt)


def sin(x):
    return sincos(x)[0]


def cos(x):
    return sincos(x)[1]


def _atan01(t: np.ndarray) -> np.ndarray:
    """atan(t) for t in [0, 1]: atan(c) from a table (c = i/8) plus atan((t-c)/(1+tc)), |.| <= 1/16."""
    ci = np.rint(t * 8.0)
    c = ci * 0.125
    u = (t - c) / (1.0 + t * c)                      # t - c exact (Sterbenz)
    z = u * u
    poly = u + (u * z) * _horner(z, _ATAN_C)
    i = ci.astype(np.int64)
    return _ATAN_HI[i] + (_ATAN_LO[i] + poly)


def arctan2(y, x):
    """Angle of (x, y) in [-pi, pi], numpy's conventions for signed zeros; finite inputs."""
    dt = _dtype(y, x)
    y = np.asarray(y, dtype=_F64)
    x = np.asarray(x, dtype=_F64)
    ax, ay = np.abs(x), np.abs(y)
    swap = ay > ax
    num = np.where(swap, ax, ay)
    den = np.where(swap, ay, ax)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(den > 0.0, num / np.where(den > 0.0, den, 1.0), 0.0)
        t = np.where(np.isnan(x) | np.isnan(y), np.nan, t)
    a = _atan01(np.where(np.isnan(t), 0.0, t))
    a = np.where(swap, (_PIO2_HI - a) + _PIO2_LO, a)
    a = np.where(np.signbit(x), (_PI_HI - a) + _PI_LO, a)
    a = np.where(np.isnan(t), np.nan, a)
    return _out(np.copysign(a, y), dt)


def arcsin(x):
    """arcsin x = arctan2(x, sqrt((1-x)(1+x))); nan outside [-1, 1]."""
    dt = _dtype(x)
    x = np.asarray(x, dtype=_F64)
    with np.errstate(invalid="ignore"):
        c = np.sqrt((1.0 - x) * (1.0 + x))
    return _out(arctan2(x, c), dt)


def hypot(x, y):
    """sqrt(x*x + y*y) in float64 (numpy's hypot is libm / SIMD depending on the CPU)."""
    dt = _dtype(x, y)
    x = np.asarray(x, dtype=_F64)
    y = np.asarray(y, dtype=_F64)
    return _out(np.sqrt(x * x + y * y), dt)


def radians(deg):
    """Degrees to radians (a single multiplication, as np.radians)."""
    return _out(np.asarray(deg, dtype=_F64) * (np.pi / 180.0), np.dtype(_F64))
