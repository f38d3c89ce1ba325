"""The mail sender the settings ask for."""

from __future__ import annotations

import logging

from infra.mail import FileMailer, Mailer
from infra.settings import Settings
from infra.smtp_mail import SmtpMailer

log = logging.getLogger("booking")


def mailer_from_settings(settings: Settings) -> Mailer:
    """SMTP_URL's server, or .eml files in MAIL_DIR when it is unset."""
    smtp = settings.smtp
    if smtp is None:
        return FileMailer(settings.mail_directory)
    log.info("mail goes out through %s", smtp)
    return SmtpMailer(smtp, timeout=settings.smtp_timeout_seconds)
