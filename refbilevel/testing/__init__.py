"""Tools for researchers' own tests against this library's ground truth (docs/testing.rst).

* :mod:`refbilevel.testing.strategies`: Hypothesis strategies drawing problems of each family
  (their constants come with them, ``problem.constants``) and points to evaluate them at. The
  family's parameters are drawn (dimension, p, seed), so a failing example shrinks to the
  simplest instance: dimension 1, p = 2.
* :mod:`refbilevel.testing.assertions`: assertions with stated false-positive rates: an
  estimate of the hypergradient against the closed form (exact), an estimator's mean against
  the truth plus its stated bias (z-tests with a Bonferroni correction, or Hotelling's T²,
  rate <= 1e-3), and a fitted log-log slope with its confidence interval.

The strategies need Hypothesis (``pip install 'refbilevel[test]'``); the assertions only
NumPy and SciPy.
"""

from refbilevel.testing.assertions import (
    MeanTest,
    SlopeFit,
    assert_estimate_matches,
    assert_hypergradient_close,
    assert_loglog_slope,
    assert_mean_matches,
    fit_loglog_slope,
    mean_test,
)

__all__ = ["MeanTest", "SlopeFit", "assert_estimate_matches", "assert_hypergradient_close",
           "assert_loglog_slope", "assert_mean_matches", "fit_loglog_slope", "mean_test"]
