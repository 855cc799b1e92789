"""One valid body per core message type, as it appears on the wire."""

from __future__ import annotations

SAMPLE_BODIES: dict[str, dict] = {
    "relationship.request": {
        "profile": {"given_name": "Ada", "email": "ada@example.org",
                    "postal_address": {"locality": "Berlin", "country": "DE"}},
        "terms": ["myterms:nostalking"],
    },
    "contact.update": {
        "changes": {"email": "ada@new.example", "phone": None,
                    "postal_address": {"street_address": "Hauptstr. 1", "region": None}},
    },
    "intent": {
        "summary": "A touring bike", "category": "bicycles", "quantity": 1,
        "budget": {"max": "800.00", "currency": "EUR"}, "needed_by": "2027-06-01",
        "location": {"locality": "Berlin", "country": "DE"},
        "valid_until": "2027-05-01T00:00:00Z",
    },
    "intent.cancel": {"reason": "bought one"},
    "offer": {"summary": "Trek 520", "price": {"amount": "749.00", "currency": "EUR"},
              "valid_until": "2027-05-01T00:00:00Z", "url": "https://shop.example/trek-520"},
    "preferences.update": {"channels": {"email": True, "sms": False}, "marketing": False},
    "feedback": {"score": 9, "comment": "Quick delivery", "subject": "order 1234"},
    "relationship.end": {"erase": True, "reason": "moving on"},
    "messages.fetch": {"after": None},
    "receipt": {"status": "accepted", "record": {"contact": "c-1", "lead": "l-2"}},
}

#: Types whose ``thread`` must name the message they answer.
THREADED = {"intent.cancel", "offer", "receipt"}
