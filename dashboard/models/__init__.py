from .audit import AuditEvent
from .connections import Connection, OIDCIdentity, ProxyIdentity
from .erasure import ErasureItem, ErasureJob
from .mirror import Character, Conversation, Message, MirrorState, ProviderState, SyncRun
from .policies import JobNotification, PolicyRun, RetentionPolicy

__all__ = [
    "AuditEvent",
    "Character",
    "Connection",
    "Conversation",
    "ErasureItem",
    "ErasureJob",
    "JobNotification",
    "Message",
    "MirrorState",
    "OIDCIdentity",
    "PolicyRun",
    "ProviderState",
    "ProxyIdentity",
    "RetentionPolicy",
    "SyncRun",
]
