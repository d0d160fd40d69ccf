"""Notifications: routes, message text, the outbox written with each decision, and its sender.

Commands from people (ack, resolve, done, cancel) live here too: they close what was notified.
"""
