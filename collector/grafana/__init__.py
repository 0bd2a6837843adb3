"""Grafana provisioning built from code and rules/*.yaml (Grafana itself cannot run here)."""
