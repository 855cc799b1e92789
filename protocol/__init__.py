"""VRM/1: the signed JSON wire format of Vendor Relationship Management.

A sans-IO library: bytes and dicts in, models and bytes out. It opens no
socket, touches no database and needs no event loop. The caller passes in
the time, the key lookup and the store of ids already seen.

    >>> raw = sign(message, key)                       # bytes, a flattened JWS
    >>> message = parse(raw, now=now, keys=resolve_did_key, recipient=my_did)

See PROTOCOL.md for the specification.
"""

from ._b64 import b64url_decode, b64url_encode
from ._codec import (
    MAX_CLOCK_SKEW,
    MAX_PAYLOAD_BYTES,
    SeenCheck,
    describe_validation_error,
    encode_payload,
    jws_bytes,
    new_message_id,
    parse,
    sign,
)
from ._evidence import verify_evidence
from ._fetch import MAX_FETCH_PAGES, FetchPage, read_fetch_page
from ._display import UNSAFE_CHARACTERS, display_json, display_text
from ._didkey import check_public_key, did_from_kid, is_did_key, kid_for_did
from ._discovery import WELL_KNOWN_PATH, DiscoveryDocument, origin, parse_discovery, same_origin
from ._errors import (
    PROBLEM_PREFIX,
    PROBLEMS,
    BadSignature,
    DiscoveryError,
    Expired,
    InvalidBody,
    InvalidMessage,
    MalformedMessage,
    MessageTooLarge,
    NotForMe,
    NotYetValid,
    ProtocolError,
    Replayed,
    SealedKeyError,
    WrongPassphrase,
    SigningError,
    UnknownKey,
    UnknownMessageType,
    UnknownRelationship,
    RelationshipRefused,
    UnsupportedMediaType,
    RequestTimeout,
    Unavailable,
    problem_name,
    problem_urn,
)
from ._ijson import MAX_DEPTH, MAX_SAFE_INTEGER, dumps, loads
from ._jws import (
    ACCEPTED_ALGORITHMS,
    JWS_TYP,
    MAX_MESSAGE_BYTES,
    sign_payload,
    verify_jws,
    verify_signature,
)
from ._keys import KeyResolver, PublicKey, SigningKey, pinned_keys, resolve_did_key
from ._messages import *  # noqa: F403 - the models are the public API
from ._messages import __all__ as _message_names
from ._registry import CORE_REGISTRY, EXTENSION_TYPE_PATTERN, MessageRegistry
from ._seal import KeySealer
from ._time import format_time, parse_date, parse_time

#: The media type of a VRM message on the wire (RFC 7515 §9.2.1).
MEDIA_TYPE = "application/jose+json"
#: The media type of an RFC 9457 problem document.
PROBLEM_MEDIA_TYPE = "application/problem+json"

__all__ = [
    "MEDIA_TYPE", "PROBLEM_MEDIA_TYPE",
    "b64url_decode", "b64url_encode",
    "MAX_CLOCK_SKEW", "MAX_PAYLOAD_BYTES", "SeenCheck", "describe_validation_error",
    "encode_payload", "jws_bytes", "new_message_id", "parse", "sign",
    "UNSAFE_CHARACTERS", "display_json", "display_text",
    "verify_evidence", "MAX_FETCH_PAGES", "FetchPage", "read_fetch_page",
    "check_public_key", "did_from_kid", "is_did_key", "kid_for_did",
    "WELL_KNOWN_PATH", "DiscoveryDocument", "origin", "parse_discovery", "same_origin",
    "PROBLEM_PREFIX", "PROBLEMS", "BadSignature", "DiscoveryError", "Expired", "InvalidBody",
    "InvalidMessage", "MalformedMessage", "MessageTooLarge", "NotForMe", "NotYetValid",
    "ProtocolError", "Replayed", "SealedKeyError", "WrongPassphrase", "problem_name", "SigningError", "UnknownKey",
    "UnknownMessageType", "UnknownRelationship", "RelationshipRefused", "UnsupportedMediaType",
    "RequestTimeout", "Unavailable", "problem_urn",
    "MAX_DEPTH", "MAX_SAFE_INTEGER", "dumps", "loads",
    "ACCEPTED_ALGORITHMS", "JWS_TYP", "MAX_MESSAGE_BYTES", "sign_payload", "verify_jws", "verify_signature",
    "KeyResolver", "PublicKey", "SigningKey", "pinned_keys", "resolve_did_key",
    "CORE_REGISTRY", "EXTENSION_TYPE_PATTERN", "MessageRegistry",
    "KeySealer", "format_time", "parse_date", "parse_time",
    *_message_names,
]
