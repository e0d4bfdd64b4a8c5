"""TextNormalizer follows scikit-learn's estimator rules."""

from __future__ import annotations

import warnings

import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError, SkipTestWarning
from sklearn.utils import estimator_checks as checks

from service.text import TextNormalizer

TEXTS = ["Min kok blm cair2 bansos?? 😭", "mantap pak wali 👍", "dalane rusak mbok didandani"]


def test_init_only_stores_and_fit_returns_self() -> None:
    normalizer = TextNormalizer(do_stem=False, stop_words="sastrawi")
    assert vars(normalizer) == normalizer.get_params()
    assert normalizer.fit(TEXTS) is normalizer
    assert set(normalizer.word_table_) >= {"min", "mantap", "dalane"}


def test_transform_requires_fit_and_clone_drops_state() -> None:
    with pytest.raises(NotFittedError):
        TextNormalizer().transform(TEXTS)
    fitted = TextNormalizer().fit(TEXTS)
    assert not hasattr(clone(fitted), "word_table_")


def test_fitted_table_gives_the_same_tokens_as_the_plain_pipeline() -> None:
    fitted = TextNormalizer().fit(TEXTS)
    unfitted_tokens = TextNormalizer().fit([]).transform(TEXTS)
    assert fitted.transform(TEXTS) == unfitted_tokens


def test_rejects_a_single_string() -> None:
    with pytest.raises(ValueError, match="single string"):
        TextNormalizer().fit("satu komentar")


@pytest.mark.parametrize(
    "check",
    [
        checks.check_no_attributes_set_in_init,
        checks.check_parameters_default_constructible,
        checks.check_get_params_invariance,
        checks.check_set_params,
        checks.check_estimator_cloneable,
        checks.check_estimator_repr,
        checks.check_estimator_tags_renamed,
        checks.check_valid_tag_types,
        checks.check_mixin_order,
    ],
)
def test_api_checks_that_apply_to_text_input(check) -> None:
    check("TextNormalizer", TextNormalizer())


def test_check_estimator_skips_numeric_checks_for_text_input() -> None:
    """The remaining checks feed numeric arrays; scikit-learn skips them for string input."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checks.check_estimator(TextNormalizer())
    assert any(issubclass(w.category, SkipTestWarning) for w in caught)
