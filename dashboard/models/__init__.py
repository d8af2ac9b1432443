from .connections import Connection
from .erasure import ErasureItem, ErasureJob
from .mirror import Character, Conversation, Message, SyncRun

__all__ = [
    "Character",
    "Connection",
    "Conversation",
    "ErasureItem",
    "ErasureJob",
    "Message",
    "SyncRun",
]
