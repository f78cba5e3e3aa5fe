"""The output channel on Slack's Web API: chat.postMessage / chat.update in the conversation's thread."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.desk import escape
from bot.delivery import OutputChannel, Sent
from core import metrics
from core.events import ConversationKey

log = logging.getLogger(__name__)


class CountedRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits Retry-After), counted in tonebot_platform_api_retries_total."""

    async def prepare_for_next_attempt_async(self, **kwargs: Any) -> None:
        metrics.PLATFORM_RETRIES.labels("slack").inc()
        await super().prepare_for_next_attempt_async(**kwargs)


class SlackChannel(OutputChannel):
    """Messages in the conversation's thread (a DM has none); Slack renders mrkdwn by itself, and
    `escape` keeps anyone's text (the model's, an agent's) from mentioning @channel or a user."""

    def __init__(self, client: AsyncWebClient, limit: int, interval: float, plain: bool = False) -> None:
        self.client, self.limit, self.interval = client, limit, interval
        self.mrkdwn = None if not plain else False  # plain: what agents see (the desk), never mrkdwn

    async def post(
        self, conversation: ConversationKey, text: str, *, reply_to: str | None = None, markdown: bool = False
    ) -> Sent:
        thread = conversation.thread_id or None
        posted = await self.client.chat_postMessage(
            channel=conversation.chat_id, thread_ts=thread, text=escape(text), mrkdwn=self.mrkdwn
        )
        return Sent(conversation, str(posted["ts"]))

    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        await self.client.chat_update(channel=sent.conversation.chat_id, ts=sent.id, text=escape(text))
        return sent

    async def delete(self, sent: Sent) -> None:
        await self.client.chat_delete(channel=sent.conversation.chat_id, ts=sent.id)
