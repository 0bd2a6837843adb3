"""Optimization: statistics (PSR/DSR/MinTRL), suggestion rules, guardrails, apply, allocation."""
