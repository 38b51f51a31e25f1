"""The scheduler process: cron in IANA time zones, firing due slots exactly once, and upkeep (reaper,
sweeper, key expiry)."""
