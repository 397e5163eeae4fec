#!/usr/bin/env python3
"""Generates Tests/VariantCoreTests/Statistics/distribution-vectors.json, the reference values that the Swift
statistics core (Sources/VariantCore/Statistics) is tested against.

How the values are made:
- Distribution values (normal, Student's t, chi-square: cdf, survival, quantile, inverse survival) come from mpmath
  at 60 significant digits: the t distribution through the regularized incomplete beta function
  (P(T > t) = I_{nu/(nu+t^2)}(nu/2, 1/2) / 2), chi-square through the regularized incomplete gamma functions, the
  normal through erfc. Quantiles are solved at that precision by bracketed bisection on ln(x), so they do not
  depend on any double-precision library. Each printed number is the correctly rounded double of the mpmath value.
- Every probability argument is the *double* the Swift test will pass (mpmath reads a Python float exactly), so
  p = 1 - 1e-12 means the double nearest to it, whose complement is 1.000088900582341e-12, not 1e-12.
- The comparison section (Welch's t-test, chi-square tests) is computed with scipy (scipy.stats.ttest_ind with
  equal_var=False, chi2_contingency with correction=False, chisquare), as an independent implementation of the same
  formulas; the two-proportion z-test has no scipy function and is computed here from its textbook formula with
  mpmath.

Run: python3 protocol/reference/generate_distribution_vectors.py  (needs mpmath; scipy and numpy for the
comparison section). The output is deterministic; with --check nothing is written and the exit status says whether
the committed file is what the generator makes today (scripts/test runs it).
"""

import argparse
import json
import pathlib
import sys

import mpmath as mp

mp.mp.dps = 60

OUTPUT = (pathlib.Path(__file__).resolve().parents[2] / "Tests" / "VariantCoreTests" / "Statistics"
          / "distribution-vectors.json")

SMALL_P = [1e-300, 1e-12, 1e-6, 0.001, 0.025, 0.3, 0.5 - 1e-9]
LARGE_P = [0.5 + 1e-9, 0.7, 0.975, 0.999, 1 - 1e-6, 1 - 1e-12]
PROBABILITIES = SMALL_P + LARGE_P
# Welch-Satterthwaite degrees of freedom of the comparison vectors below, plus a few classic small ones.
T_DEGREES = [0.5, 1, 2, 3, 5, 7.3, 13.847, 30, 1e3, 1e6]
CHI_DEGREES = [0.5, 1, 2, 3, 4, 7.3, 10, 100, 1e3, 1e6]


def f(value):
    return float(value)


def normal_survival(x):
    return mp.erfc(mp.mpf(x) / mp.sqrt(2)) / 2


def regularized_beta(a, b, x, y):
    """I_x(a, b) with y = 1 - x given exactly: x^a y^b / (a B(a, b)) * 2F1(a + b, 1; a + 1; x), every term of the
    series positive, so no digits cancel (mpmath transforms the series itself where x is close to 1)."""
    a, b = mp.mpf(a), mp.mpf(b)
    return (mp.power(x, a) * mp.power(y, b) / (a * mp.beta(a, b))
            * mp.hyp2f1(a + b, 1, a + 1, x, maxterms=10**7))


def t_tail(nu, t):
    """P(T > |t|) = I_x(nu/2, 1/2) / 2 with x = nu/(nu + t^2); wherever the tail is above 1e-35,
    (1 - P(|T| < t)) / 2, which keeps 25 of the 60 working digits and avoids the slow series near x = 1."""
    nu = mp.mpf(nu)
    t = mp.mpf(t)
    x = nu / (nu + t * t)
    y = t * t / (nu + t * t)
    if y < mp.mpf("0.5"):
        centre = regularized_beta(mp.mpf(1) / 2, nu / 2, y, x)  # P(|T| < t)
        if 1 - centre > mp.mpf("1e-35"):
            return (1 - centre) / 2
    return regularized_beta(nu / 2, mp.mpf(1) / 2, x, y) / 2


def t_cdf(nu, t):
    tail = t_tail(nu, t)
    return 1 - tail if t > 0 else tail


def chi_cdf(k, x):
    if x > k:  # the upper tail is below one half here, so its complement loses no digits
        return 1 - chi_survival(k, x)
    return mp.gammainc(mp.mpf(k) / 2, 0, mp.mpf(x) / 2, regularized=True)


def chi_survival(k, x):
    return mp.gammainc(mp.mpf(k) / 2, mp.mpf(x) / 2, mp.inf, regularized=True)


def solve_log(function, target, increasing, low=mp.mpf("1e-320"), high=mp.mpf("1e320"), guess=None):
    """The positive x where function(x) = target (function monotone): bisection on ln x to a narrow bracket, then
    the Anderson-Bjorck bracketing secant method at full working precision. A guess (scipy's double-precision
    value) only narrows the starting bracket when it really brackets the root; it never decides the result."""
    target = mp.mpf(target)
    lo, hi = mp.log(low), mp.log(high)

    def residual(u):
        value = function(mp.exp(u))
        return mp.log(value) - mp.log(target) if value > 0 else mp.mpf(-10) ** 6

    if guess is not None and 0 < guess < float("inf"):
        near_lo, near_hi = mp.log(mp.mpf(guess) / mp.mpf("1.05")), mp.log(mp.mpf(guess) * mp.mpf("1.05"))
        if (residual(near_lo) > 0) != increasing and (residual(near_hi) > 0) == increasing:
            lo, hi = near_lo, near_hi

    while hi - lo > mp.mpf("1e-3"):
        mid = (lo + hi) / 2
        above = residual(mid) > 0
        if above == increasing:
            hi = mid
        else:
            lo = mid
    root = mp.findroot(residual, (lo, hi), solver="anderson", tol=mp.mpf("1e-50"), maxsteps=200)
    return mp.exp(root)


def normal_quantile(p):
    p = mp.mpf(p)
    if p == mp.mpf(1) / 2:
        return mp.mpf(0)
    tail = p if p < 0.5 else 1 - p
    x = solve_log(normal_survival, tail, increasing=False, low=mp.mpf("1e-30"), high=mp.mpf(100))
    return -x if p < 0.5 else x


def t_quantile(nu, p):
    p = mp.mpf(p)
    tail = p if p < 0.5 else 1 - p
    from scipy import stats

    x = solve_log(lambda t: t_tail(nu, t), tail, increasing=False, low=mp.mpf("1e-30"), high=mp.mpf("1e250"),
                  guess=float(stats.t.isf(float(tail), nu)))
    return -x if p < 0.5 else x


def chi_quantile(k, p):
    p = mp.mpf(p)
    from scipy import stats

    if p < 0.5:
        return solve_log(lambda x: chi_cdf(k, x), p, increasing=True, guess=float(stats.chi2.ppf(float(p), k)))
    return solve_log(lambda x: chi_survival(k, x), 1 - p, increasing=False,
                     guess=float(stats.chi2.isf(float(1 - p), k)))


def normal_section():
    xs = [-38, -10, -5, -1.959963984540054, -1, -0.1, 0, 1e-8, 0.5, 1.959963984540054, 3, 8.2, 10, 20, 37.5]
    return {
        "cdf": [[x, f(1 - normal_survival(x))] for x in xs],
        "survival": [[x, f(normal_survival(x))] for x in xs],
        "quantile": [[p, f(normal_quantile(p))] for p in PROBABILITIES],
        "inverseSurvival": [[q, f(-normal_quantile(q))] for q in SMALL_P],
    }


def t_section():
    entries = []
    for nu in T_DEGREES:
        ts = [-50, -4.3, -1, -1e-6, 0.2, 1, 2.1, 4.3, 12.7, 50, 1e4]
        entries.append({
            "degreesOfFreedom": nu,
            "cdf": [[t, f(t_cdf(nu, t))] for t in ts],
            "survival": [[t, f(t_cdf(nu, -t))] for t in ts],
            "quantile": [[p, f(t_quantile(nu, p))] for p in PROBABILITIES if not (nu <= 1 and p == 1e-300)],
        })
    return entries


def chi_section():
    entries = []
    for k in CHI_DEGREES:
        xs = sorted({k * m for m in [1e-6, 0.01, 0.5, 1, 1.2, 2, 5]} | {1e-3, 0.5, 3.84, 1000, 1500})
        entries.append({
            "degreesOfFreedom": k,
            "cdf": [[x, f(chi_cdf(k, x))] for x in xs],
            "survival": [[x, f(chi_survival(k, x))] for x in xs],
            "quantile": [[p, f(chi_quantile(k, p))] for p in PROBABILITIES if p != 1e-300],
        })
    return entries


def comparison_section():
    import numpy as np
    from scipy import stats

    def sample(seed, n, mean, sd):
        rng = np.random.default_rng(seed)
        return [float(v) for v in rng.normal(mean, sd, n)]

    welch = []
    for seed, (n1, m1, s1, n2, m2, s2) in enumerate([
        (12, 10.0, 2.0, 9, 11.5, 4.0),
        (40, 250.0, 30.0, 55, 262.0, 45.0),
        (5, 0.31, 0.05, 200, 0.29, 0.2),
        (1000, 1e9, 1.0, 800, 1e9 + 0.1, 1.5),
    ]):
        control = sample(seed, n1, m1, s1)
        treatment = sample(seed + 100, n2, m2, s2)
        result = stats.ttest_ind(treatment, control, equal_var=False)
        v1 = np.var(control, ddof=1) / n1
        v2 = np.var(treatment, ddof=1) / n2
        df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
        ci = result.confidence_interval(0.95)
        welch.append({
            "control": control, "treatment": treatment,
            "t": float(result.statistic), "pValue": float(result.pvalue), "degreesOfFreedom": float(df),
            "lower95": float(ci.low), "upper95": float(ci.high),
        })

    contingency = []
    for table in [[[30, 970], [45, 955]], [[120, 880], [150, 850], [95, 905]], [[5, 95], [9, 91], [2, 98], [12, 88]]]:
        statistic, p, dof, _ = stats.chi2_contingency(np.array(table), correction=False)
        contingency.append({"table": table, "statistic": float(statistic), "pValue": float(p), "degreesOfFreedom": int(dof)})

    goodness = []
    for observed, weights in [([5040, 4960], [50, 50]), ([5200, 4800], [50, 50]), ([3100, 3050, 3850], [30, 30, 40]),
                              ([821, 1179], [40, 60])]:
        total = sum(observed)
        expected = [total * w / sum(weights) for w in weights]
        statistic, p = stats.chisquare(observed, expected)
        goodness.append({"observed": observed, "weights": weights, "statistic": float(statistic), "pValue": float(p)})

    proportions = []
    for (n1, s1, n2, s2) in [(1000, 100, 1000, 130), (5000, 250, 4800, 290), (200, 3, 180, 0), (12, 6, 15, 14)]:
        p1, p2 = mp.mpf(s1) / n1, mp.mpf(s2) / n2
        pooled = mp.mpf(s1 + s2) / (n1 + n2)
        se_pooled = mp.sqrt(pooled * (1 - pooled) * (mp.mpf(1) / n1 + mp.mpf(1) / n2))
        z = (p2 - p1) / se_pooled
        p_value = mp.erfc(abs(z) / mp.sqrt(2))
        se = mp.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        zc = -normal_quantile(mp.mpf("0.025"))
        proportions.append({
            "controlTrials": n1, "controlSuccesses": s1, "treatmentTrials": n2, "treatmentSuccesses": s2,
            "z": f(z), "pValue": f(p_value), "lower95": f(p2 - p1 - zc * se), "upper95": f(p2 - p1 + zc * se),
        })
    return {"welch": welch, "contingency": contingency, "goodnessOfFit": goodness, "twoProportion": proportions}


def main(argv=None):
    parser = argparse.ArgumentParser(description="(Re)generate the statistics core's distribution vectors.")
    parser.add_argument("--check", action="store_true",
                        help="do not write; regenerate in memory and exit 1 if the committed file differs")
    args = parser.parse_args(argv)
    document = {
        "generator": "protocol/reference/generate_distribution_vectors.py (mpmath %s, 60 digits)" % mp.__version__,
        "normal": normal_section(),
        "studentT": t_section(),
        "chiSquare": chi_section(),
        "comparisons": comparison_section(),
    }
    text = json.dumps(document, indent=1) + "\n"
    if not args.check:
        OUTPUT.write_text(text)
        print("wrote", OUTPUT)
        return 0
    committed = OUTPUT.read_text() if OUTPUT.exists() else ""
    if committed == text:
        print("unchanged", OUTPUT)
        return 0
    # Only the values count: another mpmath release names itself differently in "generator" but must give the
    # same correctly rounded doubles.
    ours, theirs = dict(document), json.loads(committed) if committed else {}
    ours.pop("generator")
    theirs.pop("generator", None)
    if json.loads(json.dumps(ours)) == theirs:
        print("unchanged values (generated with another mpmath)", OUTPUT)
        return 0
    print("DIFFERS", OUTPUT, "- run protocol/reference/generate_distribution_vectors.py and commit the result",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
