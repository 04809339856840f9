"""Help centre search: tokenizer, ranking over the seeded articles, snippets, fallback and query rules."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.kit.errors import InvalidArgument
from services.ticketing.domain import Category
from services.ticketing.help.domain import (
    Article,
    ArticleContent,
    Locale,
    NewArticle,
    clean_tags,
    locale_for,
    normalize_query,
    parse_locale,
)
from services.ticketing.help.search import HelpIndex, Mode, plain_text, snippet, stem, terms

pytestmark = pytest.mark.unit

SEED = Path(__file__).resolve().parents[2] / "services" / "ticketing" / "migrations" / "0003_help_centre.sql"
# One seeded row: ('zh', 'slug', 'category', '{tags}', true, 'title', $b$body$b$)
_ROW = re.compile(
    r"\('(zh|en)', '([a-z0-9-]+)', '([a-z_]+)', '\{([^}]*)\}', (true|false),\s*'((?:[^']|'')*)',\s*\$b\$(.*?)\$b\$\)",
    re.DOTALL,
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def seeded_articles() -> list[Article]:
    return [
        Article(
            id=uuid.uuid4(),
            locale=Locale(locale),
            slug=slug,
            title=title.replace("''", "'"),
            body=body,
            category=Category(category),
            tags=tuple(tag.strip() for tag in tags.split(",")),
            published=published == "true",
            version=1,
            created_at=NOW,
            updated_at=NOW,
        )
        for locale, slug, category, tags, published, title, body in _ROW.findall(SEED.read_text("utf-8"))
    ]


@pytest.fixture(scope="module")
def articles() -> list[Article]:
    return seeded_articles()


@pytest.fixture(scope="module")
def index(articles: list[Article]) -> HelpIndex:
    return HelpIndex(articles)


def article(slug: str, locale: Locale, title: str, body: str, **overrides: object) -> Article:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "locale": locale,
        "slug": slug,
        "title": title,
        "body": body,
        "category": Category.OTHER,
        "tags": (),
        "published": True,
        "version": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return Article(**fields)  # type: ignore[arg-type]


# Tokenizer -------------------------------------------------------------------------------------------------


def test_chinese_becomes_overlapping_bigrams() -> None:
    assert terms("忘记密码") == ["忘记", "记密", "密码"]


def test_a_single_chinese_character_query_is_a_unigram() -> None:
    assert terms("密") == ["密"]
    assert terms("卡 退款") == ["卡", "退款"]


def test_documents_also_index_unigrams_so_single_character_queries_match() -> None:
    assert sorted(terms("密码", Mode.INDEX)) == sorted(["密", "码", "密码"])


def test_english_is_lowercased_stripped_of_punctuation_stop_words_and_suffixes() -> None:
    assert terms("Why won't my Bank-Cards LINK?!") == ["bank", "card", "link"]
    assert terms("how do I") == []


def test_mixed_text_is_split_into_runs() -> None:
    assert terms("银行卡link失败, error 51") == ["银行", "行卡", "link", "失败", "error", "51"]


def test_full_width_forms_are_folded() -> None:
    assert terms("ＰＩＮ码") == ["pin", "码"]


def test_function_word_bigrams_are_dropped() -> None:
    assert terms("怎么") == []
    assert "解冻" in terms("怎么解冻")
    assert "怎么" not in terms("怎么解冻")


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("link", "links", "linked", "linking"), "link"),
        (("refund", "refunds", "refunded"), "refund"),
        (("transfer", "transferred", "transfers"), "transfer"),
        (("freeze", "frozen", "froze", "freezing"), "freez"),
    ],
)
def test_word_forms_share_a_stem(words: tuple[str, ...], expected: str) -> None:
    assert {stem(word) for word in words} == {expected}


def test_plain_text_drops_light_markdown() -> None:
    assert plain_text("# Title\n- **Tap** [Reset](https://x.test)\n\n1. Done") == "Title Tap Reset 1. Done"


# Queries and articles ---------------------------------------------------------------------------------------


def test_queries_are_normalised_before_counting() -> None:
    assert normalize_query("  Forgot\t PASSWORD \n ") == "forgot password"
    assert normalize_query("忘记\u3000密码") == "忘记 密码"  # an ideographic space


def test_locales_accept_regional_tags_and_reject_others() -> None:
    assert parse_locale("zh-CN") is Locale.ZH
    assert parse_locale("en_US") is Locale.EN
    assert parse_locale("") is None
    with pytest.raises(InvalidArgument) as error:
        parse_locale("fr")
    assert error.value.code == "unsupported_locale"


def test_without_a_locale_the_script_decides() -> None:
    assert locale_for(None, "忘记密码") is Locale.ZH
    assert locale_for(None, "refund") is Locale.EN
    assert locale_for(Locale.EN, "忘记密码") is Locale.EN


def test_article_rules() -> None:
    content = ArticleContent.parse(title=" T ", body="b", category="bank_card", tags=[" A ", "a", ""], published=True)
    assert (content.title, content.category, content.tags) == ("T", Category.BANK_CARD, ("a",))
    with pytest.raises(InvalidArgument):
        ArticleContent.parse(title="T", body="b", category="nonsense", tags=[], published=True)
    with pytest.raises(InvalidArgument):
        ArticleContent.parse(title="  ", body="b", category="other", tags=[], published=True)
    with pytest.raises(InvalidArgument):
        NewArticle.parse(request_id="r", locale="en", slug="Not A Slug", content=content)
    with pytest.raises(InvalidArgument):
        NewArticle.parse(request_id="r", locale="", slug="ok-slug", content=content)
    with pytest.raises(InvalidArgument):
        clean_tags([f"t{i}" for i in range(21)])


# Seed content ------------------------------------------------------------------------------------------------


def test_every_seeded_article_exists_in_both_locales(articles: list[Article]) -> None:
    zh = {a.slug for a in articles if a.locale is Locale.ZH}
    en = {a.slug for a in articles if a.locale is Locale.EN}
    assert zh == en
    assert len(zh) >= 12
    assert len(articles) == 2 * len(zh)
    assert {a.category for a in articles} == set(Category)


# Ranking -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "locale", "slug"),
    [
        ("忘记密码", Locale.ZH, "reset-password"),
        ("怎么解冻账户", Locale.ZH, "account-frozen"),
        ("退款多久到账", Locale.ZH, "refund-timing"),
        ("绑卡失败", Locale.ZH, "link-bank-card"),
        ("有人让我提供助记词", Locale.ZH, "secure-your-account"),
        ("转人工", Locale.ZH, "contact-human-agent"),
        ("card won't link", Locale.EN, "link-bank-card"),
        ("bank card", Locale.EN, "link-bank-card"),
        ("refund", Locale.EN, "refund-timing"),
        ("my transfer is stuck", Locale.EN, "transfer-pending-or-failed"),
        ("how to unfreeze account", Locale.EN, "account-frozen"),
        ("talk to a human", Locale.EN, "contact-human-agent"),
        ("beta feature missing", Locale.EN, "beta-features"),
    ],
)
def test_the_right_article_ranks_first(index: HelpIndex, query: str, locale: Locale, slug: str) -> None:
    outcome = index.search(query, locale)
    assert outcome.hits, query
    assert outcome.hits[0].article.slug == slug
    assert outcome.hits[0].article.locale is locale
    assert outcome.fallback_locale is None
    scores = [hit.score for hit in outcome.hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(("query", "locale"), [("how do I cook pasta", Locale.EN), ("做饭", Locale.ZH)])
def test_a_query_with_no_match_returns_nothing(index: HelpIndex, query: str, locale: Locale) -> None:
    outcome = index.search(query, locale)
    assert outcome.hits == []
    assert outcome.requested_locale_hits == 0
    assert outcome.fallback_locale is None


def test_the_other_locale_answers_when_the_requested_one_has_nothing(index: HelpIndex) -> None:
    outcome = index.search("unfreeze", Locale.ZH)
    assert outcome.fallback_locale is Locale.EN
    assert outcome.requested_locale_hits == 0  # still a gap of the zh help centre
    assert outcome.hits[0].article.slug == "account-frozen"
    assert outcome.hits[0].article.locale is Locale.EN
    assert index.search("unfreeze", Locale.ZH, fallback=False).hits == []


def test_a_category_filter_narrows_results_but_not_the_hit_count(index: HelpIndex) -> None:
    everything = index.search("card", Locale.EN)
    cards = index.search("card", Locale.EN, category=Category.BANK_CARD)
    assert {hit.article.category for hit in cards.hits} == {Category.BANK_CARD}
    assert len(cards.hits) < len(everything.hits)
    assert cards.requested_locale_hits == everything.requested_locale_hits


def test_titles_weigh_more_than_bodies() -> None:
    index = HelpIndex(
        [
            # Same words once each; only where "wallet" stands differs.
            article("a-in-body", Locale.EN, "Errors", "If the wallet shows an error, restart the app."),
            article("b-in-title", Locale.EN, "Wallet errors", "If the app shows an error, restart the app."),
        ]
    )
    assert [hit.article.slug for hit in index.search("wallet", Locale.EN).hits] == ["b-in-title", "a-in-body"]


def test_unpublished_articles_are_not_searched() -> None:
    draft = article("draft", Locale.EN, "Staking rewards", "Rewards arrive weekly.", published=False)
    index = HelpIndex([draft, replace(draft, slug="live", published=True, title="Something else")])
    assert [hit.article.slug for hit in index.search("staking", Locale.EN).hits] == []
    assert len(index) == 1


def test_snippets_highlight_the_matched_words(index: HelpIndex) -> None:
    zh = index.search("怎么解冻账户", Locale.ZH).hits[0].snippet
    en = index.search("refund", Locale.EN).hits[0].snippet
    assert "**解冻**" in zh
    assert "**refund**" in en.lower()
    assert len(zh) < 120
    assert len(en) < 220
    assert "#" not in en


def test_snippet_of_a_long_body_is_cut_around_the_match() -> None:
    body = "Filler sentence here. " * 30 + "The refund arrives in three days. " + "More filler text. " * 30
    text = snippet(body, {"refund"})
    assert text.startswith("…")
    assert text.endswith("…")
    assert "**refund**" in text


def test_suggestions_use_subject_description_and_category(index: HelpIndex) -> None:
    hits = index.suggest("付款失败", "扫码付款时提示错误 51 钱被扣了", Locale.ZH, category=None, limit=3)
    assert hits[0].article.slug == "payment-failed"
    assert len(hits) <= 3
    boosted = index.suggest("card", "", Locale.EN, category=Category.BANK_CARD, limit=5)
    assert boosted[0].article.category is Category.BANK_CARD
    assert index.suggest("pasta recipe", "", Locale.EN, category=None, limit=3) == []
