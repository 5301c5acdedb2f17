"""``callstack.find_on_stack``: what a framework does not pass to a hook, read from its callers."""

from __future__ import annotations

from t9k_em_core.callstack import find_on_stack


def _hook(wanted):
    return find_on_stack(lambda frame: frame.f_locals.get('batch_size')
                         if frame.f_code.co_name == wanted else None)


def fit(batch_size, wanted):  # stands for a framework's fit, which calls the hook
    return _hook(wanted)


def test_the_nearest_matching_caller_gives_its_local():
    assert fit(16, 'fit') == 16


def test_none_when_no_caller_matches():
    assert fit(16, 'evaluate') is None


def test_the_innermost_match_wins():
    def fit(batch_size):  # noqa: F811 - a fit inside a fit (nested framework calls)
        return globals()['fit'](32, 'fit')
    assert fit(8) == 32
