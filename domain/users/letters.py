"""The e-mails the users domain sends: the verification and password-reset links.

Each link is the SPA's address (APP_URL) and a path, with the token in the fragment
(`#token=...`): browsers never send a fragment to any server, so it stays out of the
SPA host's logs and of Referer headers. The SPA reads it, calls `verifyEmail` or
`resetPassword`, and clears it from the address bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

from infra.mail import compose

VERIFY_PATH = "verify-email"
RESET_PATH = "reset-password"


@dataclass(frozen=True, slots=True)
class Letterhead:
    """What a message takes from the configuration: where links point, who sends."""

    app_url: str
    sender: str

    def link(self, path: str, token: str) -> str:
        return f"{self.app_url.rstrip('/')}/{path}#token={token}"


def verification(letterhead: Letterhead, to: str, name: str, token: str) -> EmailMessage:
    text = f"""Hello {name},

please confirm that this is your e-mail address by opening this link:

{letterhead.link(VERIFY_PATH, token)}

The link works once, within 48 hours. If you did not open an account, ignore this
message.
"""
    return compose(letterhead.sender, to, "Confirm your e-mail address", text)


def password_reset(letterhead: Letterhead, to: str, name: str, token: str) -> EmailMessage:
    text = f"""Hello {name},

to choose a new password, open this link:

{letterhead.link(RESET_PATH, token)}

The link works once, within an hour; setting a new password signs you out on every
device. If you did not ask for this, ignore this message: your password stays as it is.
"""
    return compose(letterhead.sender, to, "Reset your password", text)
