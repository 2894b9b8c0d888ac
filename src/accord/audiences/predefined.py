"""Audiences every business has, written in the same condition language as any other."""

from __future__ import annotations

from dataclasses import dataclass

from accord.audiences.conditions import TraitType


@dataclass(frozen=True)
class Predefined:
    slug: str
    name: str
    text: str
    description: str
    suppression: bool = False


# Event names follow the Segment e-commerce, email and mobile specs; messaging
# channels emit the same names when they record deliveries and engagement.
PREDEFINED: tuple[Predefined, ...] = (
    Predefined(
        "purchased-7d",
        "Purchased in the last 7 days",
        'did "Order Completed" in the last 7 days',
        "Completed an order in the last week.",
    ),
    Predefined(
        "purchased-30d",
        "Purchased in the last 30 days",
        'did "Order Completed" in the last 30 days',
        "Completed an order in the last 30 days.",
    ),
    Predefined(
        "purchased-90d",
        "Purchased in the last 90 days",
        'did "Order Completed" in the last 90 days',
        "Completed an order in the last 90 days.",
    ),
    Predefined(
        "cart-abandoners",
        "Cart abandoners",
        'did "Product Added" in the last 7 days and did not "Order Completed" in the last 7 days',
        "Added a product to the cart this week and has not ordered since.",
    ),
    Predefined(
        "viewed-not-bought",
        "Viewed a product but did not buy",
        'did "Product Viewed" in the last 30 days '
        'and did not "Order Completed" in the last 30 days',
        "Looked at products this month without ordering.",
    ),
    Predefined(
        "registered-not-bought",
        "Registered but did not buy",
        'did "Signed Up" and did not "Order Completed"',
        "Signed up and never ordered.",
    ),
    Predefined(
        "engaged-email",
        "Engaged by email",
        'did "Email Opened" in the last 30 days or did "Email Link Clicked" in the last 30 days',
        "Opened or clicked an email in the last 30 days.",
    ),
    Predefined(
        "engaged-sms",
        "Engaged by SMS",
        'did "SMS Link Clicked" in the last 30 days or did "SMS Replied" in the last 30 days',
        "Clicked or replied to an SMS in the last 30 days.",
    ),
    Predefined(
        "engaged-push",
        "Engaged by push",
        'did "Push Notification Tapped" in the last 30 days',
        "Tapped a push notification in the last 30 days.",
    ),
    Predefined(
        "engaged-whatsapp",
        "Engaged on WhatsApp",
        'did "WhatsApp Message Read" in the last 30 days '
        'or did "WhatsApp Message Replied" in the last 30 days',
        "Read or replied to a WhatsApp message in the last 30 days.",
    ),
    Predefined(
        "new-visitors",
        "New visitors",
        "first seen in the last 30 days",
        "Seen for the first time in the last 30 days.",
    ),
    Predefined(
        "returning-visitors",
        "Returning visitors",
        "last seen in the last 30 days and not first seen in the last 30 days",
        "Came back this month, first seen earlier.",
    ),
    Predefined(
        "high-value",
        "High value",
        'did "Order Completed" at least 3 times in the last 365 days '
        'or did "Order Completed" where revenue >= 200 in the last 365 days',
        "Three or more orders, or one order of 200 or more, in the last year.",
    ),
    Predefined(
        "likely-to-churn",
        "Likely to churn",
        'did "Order Completed" in the last 365 days '
        'and did not "Order Completed" in the last 90 days',
        "Bought in the last year, but not in the last 90 days.",
    ),
    Predefined(
        "low-nps",
        "Low NPS",
        "trait nps_score <= 6",
        "Detractors: answered the NPS survey with 0 to 6. Left out of every activation.",
        suppression=True,
    ),
)

# Traits the predefined audiences (and messaging) rely on, known to every business's
# catalog even before a profile carries them.
BUILTIN_TRAITS: dict[str, TraitType] = {
    "email": "string",
    "phone": "string",
    "first_name": "string",
    "last_name": "string",
    "country": "string",
    "nps_score": "number",
    # RFM quintile scores (profiles/rfm.py), set by `accord profiles rfm` and kept
    # current as events come in.
    "rfm_recency_score": "number",
    "rfm_frequency_score": "number",
    "rfm_monetary_score": "number",
    "rfm_segment": "string",
}
