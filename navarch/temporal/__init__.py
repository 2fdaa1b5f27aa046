"""Temporal SDK plumbing with no fleet logic: connecting (`client`), the embedded dev server
(`devserver`), schedules (`schedules`), the heartbeat helper (`heartbeats`), the
abandoned-activity interceptor (`abandoned`) and process start and exit (`process`).

May import: `navarch.contracts`, `navarch.config`, `navarch.health`, the leaf modules.
"""
