"""Huawei Cloud KooSearch: the chat-history client (``client``), the Huawei IAM token it
sends with every request (``iam``), Huawei's error answers (``errors``) and the lenient
reading of KooSearch's fields (``fields``)."""

from __future__ import annotations

from .client import KooSearchProvider

__all__ = ["KooSearchProvider"]
