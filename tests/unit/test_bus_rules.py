import pytest

from services.kit.bus.consumer import nak_delay
from services.kit.bus.streams import ALL_STREAMS, TICKETING, ConsumerSpec, consumer_config, stream_config
from services.kit.errors import InvalidArgument
from services.kit.pagination import MAX_PAGE_SIZE, decode_token, encode_token, page_size
from services.kit.settings import BusSettings

pytestmark = pytest.mark.unit


def test_nak_back_off_grows_exponentially_and_is_capped() -> None:
    delays = [nak_delay(n) for n in range(1, 12)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays)
    assert max(delays) == 60.0


def test_streams_are_durable_bounded_and_refuse_new_data_when_full() -> None:
    settings = BusSettings(stream_max_bytes=1 << 20, stream_duplicate_window_s=600)
    config = stream_config(TICKETING, settings)
    assert config.storage is not None
    assert config.storage.value == "file"
    assert config.discard is not None
    assert config.discard.value == "new"
    assert config.max_bytes == 1 << 20
    assert config.duplicate_window == 600
    assert config.subjects == ["support.ticketing.>"]


def test_one_stream_per_producer_plus_the_wallet_and_no_overlap() -> None:
    subjects = [s for spec in ALL_STREAMS for s in spec.subjects]
    assert {spec.name for spec in ALL_STREAMS} == {"TICKETING", "ROUTING", "NOTIFY", "WALLET"}
    assert len(subjects) == len(set(subjects))


def test_consumers_ack_explicitly_and_give_up_after_max_deliver() -> None:
    spec = ConsumerSpec(TICKETING, "routing-ticket-events", ("support.ticketing.v1.ticket.created",))
    config = consumer_config(spec, BusSettings(consumer_max_deliver=7))
    assert config.durable_name == "routing-ticket-events"
    assert config.ack_policy is not None
    assert config.ack_policy.value == "explicit"
    assert config.max_deliver == 7
    assert config.filter_subjects == ["support.ticketing.v1.ticket.created"]


def test_page_size_defaults_and_caps() -> None:
    assert page_size(0) == 50
    assert page_size(10) == 10
    assert page_size(10_000) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_page_tokens_round_trip_and_forgeries_are_refused() -> None:
    cursor = {"after": "payments", "n": 3}
    assert decode_token(encode_token(cursor)) == cursor
    assert decode_token("") is None
    for bad in ("not-a-token", encode_token({"x": 1})[:-3] + "!!!", "WzEsMl0"):  # last: a JSON list
        with pytest.raises(InvalidArgument) as caught:
            decode_token(bad)
        assert caught.value.code == "invalid_page_token"
