"""Payload encryption for Temporal: every payload (workflow and activity inputs and results,
signals, queries, updates, memos, failure details, and — through the failure converter —
failure messages and stack traces) leaves the process AES-256-GCM encrypted.

An encrypted payload is the whole serialized original `Payload` (data and metadata), sealed
with a fresh 12-byte nonce, carried as `nonce || ciphertext+tag` with the metadata
`encoding: binary/encrypted` and `encryption-key-id: <id>`. Decoding picks the key by that id,
so after a rotation the history written with older keys stays readable as long as their keys
remain configured. Payloads not marked encrypted (written before encryption was switched on)
pass through unchanged.

Search attributes are not payload-codec encoded (Temporal indexes them), so they must never
carry personal data — see `shared/temporal.py`.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from shared.config import Settings

ENCODING = b"binary/encrypted"
METADATA_ENCODING = "encoding"
METADATA_KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32


class CodecConfigError(ValueError):
    """The encryption keys in the configuration are not usable."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be decrypted (unknown key id, tampered or corrupt data)."""


class UnknownEncryptionKeyError(PayloadDecryptionError):
    """A payload was encrypted with a key id that is not configured (any more)."""


def parse_keys(spec: str) -> dict[str, bytes]:
    """Parse "id:<base64 key>,id:<base64 key>" into {id: 32-byte key}."""
    keys: dict[str, bytes] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise CodecConfigError(
                "each encryption key must be written 'id:<base64 of 32 bytes>' "
                "(GRANTS_TEMPORAL_CODEC_KEYS)"
            )
        if key_id in keys:
            raise CodecConfigError(f"encryption key id {key_id!r} is configured twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CodecConfigError(f"encryption key {key_id!r} is not valid base64") from exc
        if len(key) != KEY_BYTES:
            raise CodecConfigError(
                f"encryption key {key_id!r} must be {KEY_BYTES} bytes (AES-256), not {len(key)}"
            )
        keys[key_id] = key
    if not keys:
        raise CodecConfigError("no encryption keys configured (GRANTS_TEMPORAL_CODEC_KEYS)")
    return keys


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM payload codec with key ids, for key rotation.

    `keys` holds every key that may be needed to decrypt; `current_key_id` names the one used
    to encrypt.
    """

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keys:
            raise CodecConfigError(
                f"current encryption key id {current_key_id!r} is not among the configured "
                f"keys ({', '.join(sorted(keys)) or 'none'})"
            )
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise CodecConfigError(f"encryption key {key_id!r} must be {KEY_BYTES} bytes")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current_key_id = current_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> EncryptionCodec:
        keys = parse_keys(settings.temporal_codec_keys.get_secret_value())
        return cls(keys, settings.temporal_codec_key_id.strip())

    @property
    def current_key_id(self) -> str:
        return self._current_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current_key_id].encrypt(
            nonce, payload.SerializeToString(), None
        )
        return Payload(
            metadata={
                METADATA_ENCODING: ENCODING,
                METADATA_KEY_ID: self._current_key_id.encode(),
            },
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get(METADATA_ENCODING) != ENCODING:
            return payload  # not ours: written before encryption, pass it on unchanged
        raw_id = payload.metadata.get(METADATA_KEY_ID)
        if raw_id is None:
            raise PayloadDecryptionError(
                f"encrypted payload without the {METADATA_KEY_ID!r} metadata"
            )
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownEncryptionKeyError(
                f"payload encrypted with key id {key_id!r}, which is not configured "
                f"(configured: {', '.join(sorted(self._ciphers))}); add that key to "
                "GRANTS_TEMPORAL_CODEC_KEYS"
            )
        if len(payload.data) < NONCE_BYTES + 16:
            raise PayloadDecryptionError(f"encrypted payload (key {key_id!r}) is truncated")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, None)
        except InvalidTag as exc:
            raise PayloadDecryptionError(
                f"encrypted payload (key {key_id!r}) failed authentication: "
                "tampered with, corrupt, or encrypted with a different key under that id"
            ) from exc
        original = Payload()
        original.ParseFromString(plain)
        return original
