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

#: Bodies each type's model refuses (and so does its JSON Schema, except where noted).
INVALID_BODIES: list[tuple[str, dict]] = [
    ("feedback", {"score": 11}),
    ("feedback", {"score": "9"}),
    ("feedback", {"score": 9.0}),
    ("feedback", {"score": True}),
    ("feedback", {}),
    ("feedback", {"score": 5, "colour": "red"}),
    ("contact.update", {"changes": {}}),
    ("contact.update", {"changes": {"phone": "0301234567"}}),
    ("contact.update", {"changes": {"email": "not-an-email"}}),
    ("contact.update", {"changes": {"postal_address": {"country": "Germany"}}}),
    ("contact.update", {"changes": {"language": "english please"}}),
    ("intent", {"summary": ""}),
    ("intent", {"summary": "bike", "budget": {"max": 800, "currency": "EUR"}}),
    ("intent", {"summary": "bike", "budget": {"max": "800", "currency": "euro"}}),
    ("intent", {"summary": "bike", "needed_by": "June"}),
    ("intent", {"summary": "bike", "quantity": 0}),
    ("offer", {"summary": "x", "price": {"amount": "-1", "currency": "EUR"}}),
    ("offer", {"summary": "x", "price": {"amount": "1.00", "currency": "EUR"},
               "url": "javascript:alert(1)"}),
    ("preferences.update", {}),
    ("preferences.update", {"marketing": "yes"}),
    ("relationship.end", {"erase": 1}),
    ("messages.fetch", {}),
    ("receipt", {"status": "rejected"}),
    ("receipt", {"status": "maybe"}),
    # null means absent (PROTOCOL.md §3.2), so these name nothing
    ("preferences.update", {"marketing": None}),
    ("preferences.update", {"channels": None, "marketing": None}),
    ("receipt", {"status": "unsupported", "problem": None}),
    ("contact.update", {"changes": {"postal_address": {}}}),
    ("contact.update", {"changes": {"given_name": ""}}),
    ("contact.update", {"changes": {"email": "ada\x00@example.org"}}),
    ("intent.cancel", {"reason": "x" * 201}),
    ("offer", {"summary": "x", "price": {"amount": "1.00", "currency": "EUR"},
               "url": "https://shop.example/" + "x" * 2030}),
    ("feedback", {"score": 5, "comment": "x" * 4001}),
    ("messages.fetch", {"after": "x" * 129}),
    ("receipt", {"status": "accepted", "cursor": "x" * 129}),
    ("receipt", {"status": "rejected", "problem": {"type": "x" * 201}}),
    ("intent", {"summary": "bike", "location": {"postal_code": "x" * 21}}),
    ("relationship.request", {"terms": ["nostalking"]}),
    ("relationship.request", {"terms": ["myterms:x"] * 33}),
]
