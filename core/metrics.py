"""Prometheus metrics (prometheus-client), served at /metrics by the web adapter.

Names follow Prometheus conventions: `tonebot_` prefix, `_total` counters, `_seconds` histograms.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter("tonebot_messages_received_total", "Messages accepted for answering", ["platform"])
MESSAGES_OUT = Counter("tonebot_replies_sent_total", "Replies produced", ["platform", "outcome"])
MOODS = Counter("tonebot_moods_total", "Messages by classified mood", ["platform", "mood"])
ESCALATIONS = Counter("tonebot_escalations_total", "Conversations handed to human support", ["platform", "reason"])
DUPLICATES = Counter("tonebot_duplicate_events_total", "Redelivered events answered from the ledger", ["platform"])
CLASSIFY_SECONDS = Histogram(
    "tonebot_classify_seconds", "Sentiment latency per message", buckets=(0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
)
REPLY_SECONDS = Histogram(
    "tonebot_reply_seconds", "Reply generation latency", buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160)
)
FIRST_TOKEN_SECONDS = Histogram(
    "tonebot_first_token_seconds", "Time to the first reply token", buckets=(0.1, 0.2, 0.5, 1, 2, 5, 10)
)
QUEUE_DEPTH = Gauge("tonebot_model_queue_depth", "Sentiment jobs waiting plus replies in flight")
PLATFORM_ERRORS = Counter("tonebot_platform_api_errors_total", "Failed platform API calls", ["platform"])
PLATFORM_RETRIES = Counter("tonebot_platform_api_retries_total", "Platform API calls retried", ["platform"])
HTTP_REFUSED = Counter("tonebot_http_refused_total", "HTTP API requests refused", ["reason"])
HANDOFFS = Counter("tonebot_handoffs_total", "Escalated conversations taken over by a person", ["via"])
RELAYS = Counter("tonebot_relayed_messages_total", "Messages relayed between customer and agents", ["direction"])
FIRST_HUMAN_REPLY_SECONDS = Histogram(
    "tonebot_first_human_reply_seconds", "From escalation to the first agent message",
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 14400),
)  # fmt: skip
HANDOFF_SECONDS = Histogram(
    "tonebot_handoff_duration_seconds", "From take-over to hand-back", buckets=(60, 300, 600, 1800, 3600, 14400, 86400)
)
DEAD_DELIVERIES = Counter("tonebot_dead_deliveries_total", "Deliveries given up after their attempts", ["kind"])
HEAD_FIT_PROGRESS = Gauge(
    "tonebot_mood_head_fit_progress", "A background mood-head fit: share of its rows read (1 when the head serves)"
)
FEEDBACK = Counter(
    "tonebot_feedback_total", "Thumbs given on the bot's answers (changes, not repeats)", ["platform", "thumb"]
)
OUTCOMES = Gauge(
    "tonebot_conversations_recent", "Conversation episodes of the last 7 days by outcome (README Outcomes)", ["outcome"]
)
SATISFACTION = Gauge("tonebot_satisfaction_score_mean", "Mean satisfaction score (0-100) of the last 7 days' episodes")
RATINGS = Counter("tonebot_ratings_total", "Ratings (1-5) given after a hand-off", ["platform", "rating"])
