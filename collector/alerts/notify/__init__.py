"""Fast-path notifiers (Slack webhook, JSON webhook, SMTP email) and their dispatcher."""
