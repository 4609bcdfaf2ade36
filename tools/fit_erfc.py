#!/usr/bin/env python3
"""Fits the polynomial of the CPU backend's float erfc (src/cpu/cpu_fast_unary.c).

For z >= 0 the fast path computes erfc(z) = t * exp(P(t) - z^2) with
t = 1 / (1 + z / 2), so P(t) = ln(erfc(z)) + z^2 - ln(t), a smooth function of
t on (0, 1]. This script fits P of degree 9 over z in [0, 10] (t in [1/6, 1];
past z = 9.2 erfc is under float's smallest normal) by weighted least squares
in the Chebyshev basis, reweighted towards the worst points (close to minimax),
prints the monomial coefficients for the C source, and checks the whole
formula evaluated in float32 the way the C code does (Horner in float, the
exponent in float, one float rounding of exp) against math.erfc.

    python3 tools/fit_erfc.py

Output: the coefficients and the worst relative error in units of
FLT_EPSILON, over 1 + z^2 (the condition of erfc at z, which the argument's
own rounding already costs).
"""
import math

import numpy as np

HALF = 0.5
DEGREE = 9
EPS = float(np.finfo(np.float32).eps)


def fit():
    z = np.linspace(0.0, 10.0, 100001)
    t = 1.0 / (1.0 + HALF * z)
    target = np.log([math.erfc(v) for v in z]) + z * z - np.log(t)
    weight = np.ones_like(t)
    for _ in range(30):
        cheb = np.polynomial.chebyshev.Chebyshev.fit(t, target, DEGREE, domain=[t.min(), 1.0], w=weight)
        err = np.abs(cheb(t) - target)
        weight = weight * (1.0 + 5.0 * err / err.max())
        weight /= weight.max()
    mono = cheb.convert(kind=np.polynomial.Polynomial, domain=[-1, 1], window=[-1, 1])
    return mono.coef.astype(np.float32), err.max()


def check(coef):
    z = np.linspace(0.0, 9.0, 300001).astype(np.float32)
    exact = np.array([math.erfc(float(v)) for v in z])
    t = (np.float32(1) / (np.float32(1) + np.float32(HALF) * z)).astype(np.float32)
    acc = np.full_like(t, coef[-1])
    for c in coef[-2::-1]:
        acc = (acc * t + c).astype(np.float32)
    arg = (acc - (z * z).astype(np.float32)).astype(np.float32)
    got = (t * np.exp(arg.astype(np.float64)).astype(np.float32)).astype(np.float32)
    rel = np.abs(got.astype(np.float64) - exact) / exact / EPS
    return (rel / (1.0 + z.astype(np.float64) ** 2)).max()


def main():
    coef, fit_err = fit()
    print("/* P(t), t^0 first */")
    print("static const float ERFC_P[%d] = {%s};" % (len(coef), ", ".join("%.9gf" % c for c in coef)))
    print("fit error %.3g (ln erfc); float32 evaluation: worst %.2f eps * (1 + z^2)" % (fit_err, check(coef)))


if __name__ == "__main__":
    main()
