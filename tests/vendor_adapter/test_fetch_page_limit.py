"""PROTOCOL.md §6.4: a vendor holds for fetching no message that could not fit a
page alone, so that one large message can never block the outbox."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

import protocol
from vendor_adapter import Vendor
from vendor_adapter._errors import OfferError
from vendor_adapter._ledger import FETCH_BUDGET


def test_a_message_too_large_for_a_page_is_not_queued(tmp_path: Path) -> None:
    with Vendor.open(tmp_path / "crm.db", name="Shop", passphrase="pages") as vendor:
        person = protocol.SigningKey.generate()
        offer = protocol.Offer(
            id="o1", sender=vendor.did, to=person.did, created=datetime.now(timezone.utc),
            thread="i1", body=protocol.OfferBody(
                summary="big", price=protocol.Price(amount="1", currency="EUR")))
        with pytest.raises(OfferError, match="fetch page"):
            vendor._db.writer.run_sync(lambda conn: vendor.ledger.queue(
                conn, person.did, offer, b"x" * (FETCH_BUDGET + 1)))
        vendor._db.writer.run_sync(lambda conn: vendor.ledger.queue(
            conn, person.did, offer, b"x" * FETCH_BUDGET))
        count = vendor._db.read("SELECT count(*) AS n FROM vrm_outbox")[0]["n"]
        assert count == 1
