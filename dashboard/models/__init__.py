from .audit import AuditEvent, Tick
from .connections import Connection, OIDCIdentity, ProxyIdentity
from .erasure import ErasureItem, ErasureJob, ErasureLease
from .findings import Finding, FindingNotice, FindingPattern
from .mirror import Character, Conversation, Message, MirrorState, ProviderState, SyncRun
from .policies import JobNotification, PolicyRun, RetentionPolicy
from .traffic import ProviderTraffic

__all__ = [
    "AuditEvent",
    "Character",
    "Connection",
    "Conversation",
    "ErasureItem",
    "ErasureJob",
    "ErasureLease",
    "Finding",
    "FindingNotice",
    "FindingPattern",
    "JobNotification",
    "Message",
    "MirrorState",
    "OIDCIdentity",
    "PolicyRun",
    "ProviderState",
    "ProviderTraffic",
    "ProxyIdentity",
    "RetentionPolicy",
    "SyncRun",
    "Tick",
]
