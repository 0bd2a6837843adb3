"""Scheduled jobs (APScheduler): rollups; later the optimizer and housekeeping."""
