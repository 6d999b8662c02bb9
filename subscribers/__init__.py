"""The SDK an organisation's system embeds: publish events, receive deliveries, emit receipts."""

from subscribers.connection import connect
from subscribers.publisher import Publisher, compose
from subscribers.recipient import Delivery, Handler, Recipient

__all__ = ["Delivery", "Handler", "Publisher", "Recipient", "compose", "connect"]
