"""Alerting: the rule schema (rules/alerts.yaml), detectors, streaming evaluation, notifiers."""
