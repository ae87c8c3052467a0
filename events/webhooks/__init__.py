"""Webhooks: endpoints users register (apis, services), and the delivery of their events (delivery)."""
