"""Pure rules of notifications: sentences, Retry-After, push payload shapes, preferences."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from src.common.clock import utcnow
from src.modules.notifications.kinds import KINDS, default_channels
from src.modules.notifications.preferences import Preferences
from src.modules.notifications.push.content import PushContent, clear_content, fcm_message, webpush_data
from src.modules.notifications.push.outcome import from_status, retry_after
from src.modules.notifications.views import sentence


def test_sentences_name_the_latest_actors_and_count_the_rest() -> None:
    assert sentence("follow", ["Ann"], 1, 1) == "Ann started following you"
    assert sentence("reaction", ["Ann", "Bob"], 2, 2) == "Ann and Bob reacted to your post"
    assert sentence("reaction", ["Ann", "Bob"], 12, 15) == "Ann and 11 others reacted to your post"
    assert sentence("message", ["Ann"], 1, 3) == "Ann sent you 3 messages"
    assert sentence("comment", [], 1, 1) == "Someone commented on your post"


def test_defaults_mail_only_messages_and_friend_requests() -> None:
    assert {k for k in KINDS if default_channels(k)["email"]} == {"message", "friend_request"}
    assert all(default_channels(k)["in_app"] and default_channels(k)["push"] for k in KINDS)
    prefs = Preferences(overrides={"follow": {"push": False}}, show_previews=True)
    assert prefs.channels("follow") == {"in_app": True, "push": False, "email": False}
    assert prefs.view().kinds["message"] == {"in_app": True, "push": True, "email": True}


def test_retry_after_in_seconds_or_as_a_date_and_capped() -> None:
    assert retry_after("2") == 2.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("999999") == 3600.0
    later = retry_after(format_datetime(utcnow() + timedelta(seconds=30), usegmt=True))
    assert later is not None and 25 <= later <= 31


def test_statuses_map_to_what_we_do_next() -> None:
    assert from_status(200, None, gone=False).status == "sent"
    assert from_status(404, None, gone=True).status == "gone"
    assert (from_status(429, "7", gone=False).status, from_status(429, "7", gone=False).retry_after) == ("retry", 7.0)
    assert from_status(503, None, gone=False).status == "retry"
    assert from_status(400, None, gone=False).status == "failed"


def test_a_clear_is_data_only_and_an_alert_replaces_by_tag() -> None:
    clear = fcm_message("tok", clear_content(["a", "b"]))["message"]
    assert isinstance(clear, dict) and "notification" not in clear
    assert clear["data"] == {"type": "clear", "notification_ids": "a,b"}
    alert = fcm_message("tok", PushContent(data={"kind": "follow"}, title="Chatty", body="Ann", tag="n1"))["message"]
    assert isinstance(alert, dict)
    assert alert["notification"] == {"title": "Chatty", "body": "Ann"}
    assert alert["android"] == {"collapse_key": "n1", "notification": {"tag": "n1"}}
    assert webpush_data(clear_content(["a"])) == {"type": "clear", "notification_ids": "a"}
