"""The booking e-mails' words: subject, plain text and HTML rendered from Jinja2 template
files (domain/notifications/templates/), and the `EmailMessage` that carries them.

Pure: plain data in, strings out; no I/O beyond reading the templates, no database, no
sending (infra.mail's `Mailer.send` takes what `to_email` builds).

- One template pair per `MessageKind`: `text/<kind>.txt` (its `subject` block is the
  subject) and `html/<kind>.html`, each extending a shared layout (`base.txt`,
  `base.html`) that greets the recipient, signs with the organization's name and, for a
  guest, adds the manage link.
- Times appear in the recipient's own zone, named by its IANA name (unambiguous) after
  the abbreviation: "Monday 7 December 2026, 09:00 to 10:00 CET (Europe/Berlin)" (an en
  dash for "to"). Dates are English whatever the process's locale.
- Money is integer minor units and a currency code: 4500 EUR is "45.00 EUR", 4500 JPY
  "4500 JPY".
- StrictUndefined: a template asking for something the data lacks (a rescheduled message
  without its previous time, a receipt without an amount) raises instead of printing a
  blank. Optional things are left out of the context when absent, and the templates ask
  `is defined`.
- HTML autoescapes (a name like `<script>` arrives as text); plain text does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from enum import Enum
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
EN_DASH = "\u2013"  # joins two times of one day


class MessageKind(Enum):
    """Which message; the value names its template files."""

    # To the customer or guest.
    BOOKING_RECEIVED = "booking_received"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_AWAITING_CONFIRMATION = "booking_awaiting_confirmation"
    BOOKING_DECLINED = "booking_declined"
    BOOKING_CANCELLED = "booking_cancelled"
    BOOKING_RESCHEDULED = "booking_rescheduled"
    BOOKING_EXPIRED = "booking_expired"
    PAYMENT_RECEIPT = "payment_receipt"
    PAYMENT_REFUND = "payment_refund"
    REMINDER = "reminder"  # lead_minutes before the start (the organization's setting)
    # To the staff member.
    STAFF_BOOKING_NEW = "staff_booking_new"
    STAFF_BOOKING_CANCELLED = "staff_booking_cancelled"
    STAFF_BOOKING_MOVED = "staff_booking_moved"
    STAFF_BOOKING_CONFIRMED = "staff_booking_confirmed"  # a request they had, confirmed
    STAFF_BOOKING_DECLINED = "staff_booking_declined"  # a request they had, declined

    @property
    def to_staff(self) -> bool:
        return self.name.startswith("STAFF_")


@dataclass(frozen=True, slots=True)
class MessageData:
    """What a message says. Datetimes are aware (any zone; shown in `time_zone`, the
    recipient's IANA zone). recipient_name is who the message greets (the customer or
    guest, or the staff member); customer_name is whom a staff message is about.
    previous_start/previous_end: the times before a reschedule or move. amount and
    currency: integer minor units and an ISO 4217 code, for a receipt or refund.
    manage_link: a guest's link to their booking (never on a staff message).
    payment_due: until when an unpaid booking keeps its slot (BOOKING_RECEIVED).
    lead_minutes: how long before the start a REMINDER is sent ("in 24 hours").
    previous_staff_name: who the booking was with before a move that changed it."""

    recipient_name: str
    recipient_email: str
    time_zone: str
    organization_name: str
    service_name: str
    staff_name: str
    start: datetime
    end: datetime
    customer_name: str | None = None
    previous_start: datetime | None = None
    previous_end: datetime | None = None
    amount: int | None = None
    currency: str | None = None
    manage_link: str | None = None
    reason: str | None = None
    payment_due: datetime | None = None
    lead_minutes: int | None = None
    previous_staff_name: str | None = None

    def __post_init__(self) -> None:
        times = (self.start, self.end, self.previous_start, self.previous_end, self.payment_due)
        if any(t is not None and t.tzinfo is None for t in times):
            raise ValueError("A message's times must be aware datetimes.")
        if self.end <= self.start:
            raise ValueError("A booking must end after it starts.")
        if (self.amount is None) != (self.currency is None):
            raise ValueError("An amount needs its currency, and a currency its amount.")
        ZoneInfo(self.time_zone)  # an unknown zone fails here, not halfway through a send


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


# ISO 4217 minor-unit exponents other than 2 (babel is not a dependency).
_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENTS = {
    **{code: 0 for code in _ZERO_DECIMAL.split(" ")},
    **{code: 3 for code in _THREE_DECIMAL.split(" ")},
}

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def format_money(amount: int, currency: str) -> str:
    """4500, "eur" -> "45.00 EUR"; 4500, "JPY" -> "4500 JPY"; -250, "EUR" -> "-2.50 EUR"."""
    code = currency.upper()
    exponent = _EXPONENTS.get(code, 2)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exponent)
    number = f"{major}.{minor:0{exponent}d}" if exponent else str(major)
    return f"{sign}{number} {code}"


def format_lead(minutes: int) -> str:
    """1440 -> "24 hours", 60 -> "1 hour", 2880 -> "2 days", 90 -> "1 hour 30 minutes"."""
    if minutes >= 2880 and minutes % 1440 == 0:
        return f"{minutes // 1440} days"
    hours, rest = divmod(minutes, 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if rest or not hours:
        parts.append(f"{rest} minute{'s' if rest != 1 else ''}")
    return " ".join(parts)


def _date(moment: datetime) -> str:
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def _zone_label(moment: datetime, time_zone: str) -> str:
    abbreviation = moment.tzname()
    # Zones without a letter abbreviation give "+03" and the like: the name alone then.
    if abbreviation and abbreviation.isalpha() and abbreviation != time_zone:
        return f"{abbreviation} ({time_zone})"
    return f"({time_zone})"


def format_moment(moment: datetime, time_zone: str) -> str:
    """`moment` in `time_zone`: "Monday 7 December 2026, 09:00 CET (Europe/Berlin)"."""
    local = moment.astimezone(ZoneInfo(time_zone))
    return f"{_date(local)}, {local:%H:%M} {_zone_label(local, time_zone)}"


def format_range(start: datetime, end: datetime, time_zone: str) -> str:
    """Start to end in `time_zone`: "Monday 7 December 2026, 09:00 to 10:00 CET
    (Europe/Berlin)" (an en dash for "to"); a range crossing midnight (or a clock
    change) names both ends in full."""
    zone = ZoneInfo(time_zone)
    first, last = start.astimezone(zone), end.astimezone(zone)
    if first.date() == last.date() and first.tzname() == last.tzname():
        return f"{_date(first)}, {first:%H:%M}{EN_DASH}{last:%H:%M} {_zone_label(first, time_zone)}"
    return f"{format_moment(first, time_zone)} {EN_DASH} {format_moment(last, time_zone)}"


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _context(kind: MessageKind, data: MessageData) -> dict[str, str]:
    if kind.to_staff and data.manage_link is not None:
        # The link is the guest's key to their booking: it stays out of staff mail.
        raise ValueError("A staff message does not carry a guest's manage link.")
    zone = data.time_zone
    optional: dict[str, str | None] = {
        "customer_name": data.customer_name,
        "manage_link": data.manage_link,
        "reason": data.reason,
        "previous_when": (
            format_range(data.previous_start, data.previous_end or data.previous_start, zone)
            if data.previous_start is not None
            else None
        ),
        "amount": (
            format_money(data.amount, data.currency)
            if data.amount is not None and data.currency is not None
            else None
        ),
        "payment_due": (
            format_moment(data.payment_due, zone) if data.payment_due is not None else None
        ),
        "lead": format_lead(data.lead_minutes) if data.lead_minutes is not None else None,
        "previous_staff_name": data.previous_staff_name,
    }
    return {
        "recipient_name": data.recipient_name,
        "organization_name": data.organization_name,
        "service_name": data.service_name,
        "staff_name": data.staff_name,
        "when": format_range(data.start, data.end, zone),
        **{key: value for key, value in optional.items() if value is not None},
    }


def render(kind: MessageKind, data: MessageData) -> Rendered:
    """The subject, plain text and HTML of `kind` for `data`. Raises
    jinja2.UndefinedError when the kind needs something `data` lacks."""
    env = environment()
    context = _context(kind, data)
    text_template = env.get_template(f"text/{kind.value}.txt")
    subject_block = text_template.blocks["subject"]
    subject = "".join(subject_block(text_template.new_context(context)))
    # A header is one line: names with line breaks in them must not start a new header.
    subject = " ".join(subject.split())
    # Optional paragraphs left out leave blank lines behind: at most one between two.
    text = re.sub(r"\n{3,}", "\n\n", text_template.render(context))
    html = env.get_template(f"html/{kind.value}.html").render(context, subject=subject)
    return Rendered(subject=subject, text=text, html=html)


def to_email(
    rendered: Rendered,
    *,
    sender: str,
    recipient: str,
    invite: bytes | None = None,
    invite_content_type: str | None = None,
    now: datetime | None = None,
) -> Message:
    """A message for the mail queue: multipart/alternative of the text and the HTML and,
    with `invite` (build_invite's bytes) and its `invite_content_type`
    (invites.content_type, "text/calendar; method=...; charset=UTF-8"), the calendar
    as a third alternative (text/calendar with its method, which mail clients offer to
    add) inside multipart/mixed with the same bytes attached as invite.ics.

    Built with the classic MIME classes (compat32), not EmailMessage: the modern API
    parses every header it sets through its header registry, three times the work (about
    3 ms a message, in the process that serves requests). Non-ASCII names and subjects
    are encoded (RFC 2047), bodies quoted-printable UTF-8."""
    body = MIMEMultipart("alternative")
    body.attach(_text(rendered.text, "plain"))
    body.attach(_text(rendered.html, "html"))
    message: MIMEMultipart = body
    if invite is not None:
        method = _calendar_method(invite_content_type)
        calendar = _text(invite.decode(), "calendar")
        calendar.set_param("method", method)
        body.attach(calendar)
        message = MIMEMultipart("mixed")
        message.attach(body)
        attachment = MIMEApplication(invite, "ics")
        attachment.add_header("Content-Disposition", "attachment", filename="invite.ics")
        message.attach(attachment)
    message["From"] = _address(sender)
    message["To"] = _address(recipient)
    message["Subject"] = _header(rendered.subject)
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    message["Message-ID"] = make_msgid(domain="booking.local")
    return message


# Bodies in UTF-8, quoted-printable: readable in an .eml file, 7-bit safe on the wire.
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


def _text(content: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    part.set_payload(content, _UTF8)
    return part


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if name else address


def _calendar_method(content_type: str | None) -> str:
    if content_type is None:
        raise ValueError("An invite needs its content type (invites.content_type).")
    header = EmailMessage()
    header["Content-Type"] = content_type
    method = header.get_param("method")
    if header.get_content_type() != "text/calendar" or not isinstance(method, str):
        raise ValueError(f"Not a calendar content type with a method: {content_type!r}")
    return method.upper()
