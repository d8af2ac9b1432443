"""Huawei Cloud KooSearch: the chat-history client (``client``) and the Huawei IAM token
it sends with every request (``iam``)."""

from __future__ import annotations

from .client import KooSearchProvider

__all__ = ["KooSearchProvider"]
