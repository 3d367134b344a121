"""Channels, request types, urgency and satisfaction of 12345 work orders."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"
    WEB = "web"
    APP = "app"
    MESSAGE_BOARD = "message_board"
    POLICE_110 = "police_110"
    OPEN311 = "open311"
    API = "api"

    @property
    def label(self) -> str:
        return CHANNEL_LABELS[self]


CHANNEL_LABELS = {
    Channel.PHONE: "电话",
    Channel.WEB: "网站",
    Channel.APP: "移动端",
    Channel.MESSAGE_BOARD: "留言板",
    Channel.POLICE_110: "110 分流",
    Channel.OPEN311: "Open311",
    Channel.API: "接口",
}


class RequestType(StrEnum):
    CONSULTATION = "consultation"
    HELP = "help"
    COMPLAINT = "complaint"
    REPORT = "report"
    SUGGESTION = "suggestion"
    PRAISE = "praise"

    @property
    def label(self) -> str:
        return REQUEST_TYPE_LABELS[self]


REQUEST_TYPE_LABELS = {
    RequestType.CONSULTATION: "咨询",
    RequestType.HELP: "求助",
    RequestType.COMPLAINT: "投诉",
    RequestType.REPORT: "举报",
    RequestType.SUGGESTION: "建议",
    RequestType.PRAISE: "表扬",
}


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    EMERGENCY = "emergency"  # life, property or public safety at stake

    @property
    def label(self) -> str:
        return {"normal": "一般", "urgent": "紧急", "emergency": "特急"}[self.value]


class Satisfaction(StrEnum):
    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"

    @property
    def label(self) -> str:
        return SATISFACTION_LABELS[self]

    @property
    def counts_as_satisfied(self) -> bool:
        return self in {
            Satisfaction.VERY_SATISFIED,
            Satisfaction.SATISFIED,
            Satisfaction.BASICALLY_SATISFIED,
        }


SATISFACTION_LABELS = {
    Satisfaction.VERY_SATISFIED: "非常满意",
    Satisfaction.SATISFIED: "满意",
    Satisfaction.BASICALLY_SATISFIED: "基本满意",
    Satisfaction.DISSATISFIED: "不满意",
    Satisfaction.VERY_DISSATISFIED: "非常不满意",
}


class EmergencyService(StrEnum):
    POLICE = "110"
    FIRE = "119"
    AMBULANCE = "120"
