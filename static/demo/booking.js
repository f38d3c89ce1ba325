// Booking a slot of the board as a guest, paying for a paid service, and the booking
// watched live: its status comes from the bookingChanged subscription, so a payment
// made anywhere (the button below, Stripe's webhook, another tab) shows here.
// Uses demo.js's $, state, client, graphql, money and the time labels.
"use strict";

const BOOKING_FIELDS = `id reference start status expiresAt staff { name }
  payment { status provider failureMessage amount { amount currency } }
  history { at }`;
const CREATE_BOOKING = `mutation($input: CreateBookingInput!) {
  createBooking(input: $input) {
    booking { ${BOOKING_FIELDS} }
    manageToken
    errors { code field message }
  }
}`;
const CONFIRM_PAYMENT = `mutation($bookingId: ID!, $manageToken: String) {
  confirmPayment(bookingId: $bookingId, manageToken: $manageToken) {
    booking { ${BOOKING_FIELDS} }
    errors { code message }
  }
}`;
const BOOKING_CHANGED = `subscription($bookingId: ID!, $manageToken: String) {
  bookingChanged(bookingId: $bookingId, manageToken: $manageToken) { ${BOOKING_FIELDS} }
}`;

const STATUS_NOTES = {
  PENDING_PAYMENT: "the slot is held until it is paid",
  PENDING_CONFIRMATION: "the business confirms it",
  CONFIRMED: "see you then",
  EXPIRED: "not paid in time: the slot is free again",
  CANCELLED: "cancelled",
  DECLINED: "declined by the business",
};

// The guest's latest booking on this page, and the subscription that follows it.
const mine = { booking: null, manageToken: null, unsubscribe: null };

// ---- the booking dialog -------------------------------------------------------------

function choose(slot, date, timeZone) {
  // The column's date: the business's own day, not the UTC one of the start.
  state.chosen = slot;
  $("book-when").textContent = dayLabel(date) + " " + timeLabel(slot.start, timeZone);
  const price = state.services.get(state.serviceId).price;
  $("book-price").textContent = price ? `${money(price)}, paid after booking to confirm it` : "";
  $("book-price").hidden = !price;
  $("book-error").hidden = true;
  $("book").showModal();
}

function idempotencyKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = false;
}

$("book-cancel").addEventListener("click", () => $("book").close());
$("book-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = {
    serviceId: state.serviceId,
    start: state.chosen.start,
    idempotencyKey: idempotencyKey(),
    guest: { name: $("guest-name").value, email: $("guest-email").value },
  };
  try {
    const result = (await graphql(CREATE_BOOKING, { input })).createBooking;
    if (result.errors.length) {
      showError("book-error", result.errors.map((e) => e.message).join(" "));
      return;
    }
    $("book").close();
    const booking = result.booking;
    const token = document.createElement("code");
    token.id = "manage-token";
    token.textContent = result.manageToken;
    $("booked-what").replaceChildren(
      `Booked ${booking.reference} with ${booking.staff.name}. Keep your manage token: `, token,
    );
    $("booked").dataset.reference = booking.reference;
    $("booked").hidden = false;
    follow(booking, result.manageToken);
  } catch (error) {
    showError("book-error", String(error.message || error));
  }
});

// ---- the booking, live --------------------------------------------------------------

function show(booking) {
  // Answers and pushes may cross on the way: the history only grows, so a shorter one
  // is older than what is shown.
  const shown = mine.booking;
  if (shown && shown.id === booking.id && booking.history.length < shown.history.length) return;
  mine.booking = booking;
  $("booked").dataset.status = booking.status;
  $("booking-status").textContent = booking.status;
  $("booking-status-note").textContent = STATUS_NOTES[booking.status] || "";
  const payment = booking.payment;
  const due = booking.status === "PENDING_PAYMENT" && payment !== null;
  $("payment").hidden = !due;
  if (!due) return;
  $("payment-due").textContent = `To pay: ${money(payment.amount)} by ` +
    `${timeLabel(booking.expiresAt, state.org.timeZone)} (${state.org.timeZone})`;
  // Only the offline provider can be paid by a button; Stripe wants Stripe.js and a card.
  const offline = payment.provider === "offline";
  $("pay").hidden = !offline;
  $("pay-stripe").hidden = offline;
  if (payment.failureMessage) showError("pay-error", payment.failureMessage);
}

function follow(booking, manageToken) {
  if (mine.unsubscribe) mine.unsubscribe();
  mine.booking = null;
  mine.manageToken = manageToken;
  $("pay-error").hidden = true;
  show(booking);
  mine.unsubscribe = client.subscribe(
    { query: BOOKING_CHANGED, variables: { bookingId: booking.id, manageToken } },
    {
      next: (result) => {
        if (result.data) show(result.data.bookingChanged);
        else if (result.errors) showError("pay-error", result.errors[0].message);
      },
      // GraphQL errors come as a list (a lost connection is retried, not reported).
      error: (error) => showError("pay-error", Array.isArray(error) ? error[0].message
        : String(error && error.message || error)),
      complete: () => {},
    },
  );
}

$("pay").addEventListener("click", async () => {
  const pay = $("pay");
  pay.disabled = true;
  $("pay-error").hidden = true;
  try {
    const result = (await graphql(CONFIRM_PAYMENT, {
      bookingId: mine.booking.id, manageToken: mine.manageToken,
    })).confirmPayment;
    if (result.errors.length) showError("pay-error", result.errors.map((e) => e.message).join(" "));
    else show(result.booking);
  } catch (error) {
    showError("pay-error", String(error.message || error));
  } finally {
    pay.disabled = false;
  }
});
