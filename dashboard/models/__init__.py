from .audit import AuditEvent
from .connections import Connection, OIDCIdentity
from .erasure import ErasureItem, ErasureJob
from .mirror import Character, Conversation, Message, SyncRun

__all__ = [
    "AuditEvent",
    "Character",
    "Connection",
    "Conversation",
    "ErasureItem",
    "ErasureJob",
    "Message",
    "OIDCIdentity",
    "SyncRun",
]
