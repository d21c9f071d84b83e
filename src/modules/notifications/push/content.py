"""What a push says, independent of the service: an alert, or a silent clear."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PushContent:
    """An alert (`title`, `body`) or, with `title` None, a silent data-only message.

    `data` values are strings (FCM's rule); `tag` makes a newer alert replace an older one.
    """

    data: dict[str, str]
    title: str | None = None
    body: str | None = None
    tag: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def silent(self) -> bool:
        return self.title is None


def clear_content(notification_ids: list[str]) -> PushContent:
    """The silent push that removes these notifications from a device."""
    return PushContent(data={"type": "clear", "notification_ids": ",".join(notification_ids)})


def fcm_message(token: str, content: PushContent) -> dict[str, object]:
    """The body of an FCM HTTP v1 `messages:send` request."""
    message: dict[str, object] = {"token": token, "data": content.data}
    if content.silent:
        message["android"] = {"priority": "high"}
        message["apns"] = {"headers": {"apns-push-type": "background", "apns-priority": "5"},
                           "payload": {"aps": {"content-available": 1}}}
    else:
        message["notification"] = {"title": content.title, "body": content.body}
        if content.tag:
            message["android"] = {"collapse_key": content.tag, "notification": {"tag": content.tag}}
            message["apns"] = {"headers": {"apns-collapse-id": content.tag}}
    return {"message": message}


def webpush_data(content: PushContent) -> dict[str, object]:
    """The JSON a service worker receives."""
    if content.silent:
        return dict(content.data)
    return {**content.data, "title": content.title, "body": content.body, "tag": content.tag}
