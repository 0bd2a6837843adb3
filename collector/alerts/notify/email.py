"""Email over SMTP: STARTTLS, implicit TLS (ssl) or plain, with optional login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from collector.alerts.notify.base import Notification, Notifier, NotifyError, secret
from collector.alerts.notify.deadline import Deadline
from collector.alerts.rules import EmailNotifier


class Email(Notifier):
    def __init__(self, name: str, config: EmailNotifier, timeout: float) -> None:
        self.name, self.config, self.timeout = name, config, timeout
        self.password = (
            secret(name, config.password_env, config.password_file, "the SMTP password")
            if config.password_env or config.password_file
            else None
        )

    def send(self, notification: Notification) -> None:
        config = self.config
        message = EmailMessage()
        message["Subject"] = f"stratmon {notification.title}"
        message["From"] = config.sender
        message["To"] = ", ".join(config.to)
        message.set_content("\n".join(notification.lines()) + "\n")
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(timeout=self.timeout, context=context)
            if config.security == "ssl"
            else smtplib.SMTP(timeout=self.timeout)
        )
        client._host = config.host  # type: ignore[attr-defined]  # set by connect-in-constructor; STARTTLS needs it
        try:
            with Deadline(self.timeout, lambda: client.sock), client:  # a total deadline, not per read
                client.connect(config.host, config.port)
                if config.security == "starttls":
                    client.starttls(context=context)
                if config.username and self.password is not None:
                    client.login(config.username, self.password)
                client.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=exc.smtp_code >= 400 and exc.smtp_code < 500
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # no secret in these: the password is never echoed
            raise NotifyError(f"{type(exc).__name__}: {exc}", retryable=True) from None
