"""Exact bytes of individual tokens, shared by the training log and the token-probability export.

Decoding one id at a time (`tokenizer.decode([i])`) turns a token that holds part of a UTF-8 character into U+FFFD,
so per-token text built that way neither round-trips nor shows what the model emitted. For byte-level BPE
tokenizers (Phi-4's, GPT-2's) each token's bytes are recovered exactly from its vocabulary string; special tokens
are their own text. Other tokenizers fall back to single-id decoding.

>>> from tokenizers.pre_tokenizers import ByteLevel
>>> sorted(_BYTE_DECODER) == sorted(ByteLevel.alphabet())
True
>>> token_text([b"caf", b"\\xc3", b"\\xa9"])
['caf', '\\\\xc3', '\\\\xa9']
"""

from __future__ import annotations

from collections.abc import Sequence


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the alphabet of byte-level BPE vocabularies)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


_BYTE_DECODER = {char: byte for byte, char in _bytes_to_unicode().items()}


class _TokenTable:
    """Per-tokenizer memo of id -> bytes (token bytes never change; the export asks for the same ids many times)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        # transformers rebuilds `added_tokens_decoder` on every access: read it once
        self.added = {int(i): token.content for i, token in getattr(tokenizer, "added_tokens_decoder", {}).items()}
        self.bytes: dict[int, bytes] = {}

    def lookup(self, token_ids: list[int]) -> list[bytes]:
        missing = [i for i in dict.fromkeys(token_ids) if i not in self.bytes]
        if missing:
            for token_id, piece in zip(missing, self.tokenizer.convert_ids_to_tokens(missing)):
                if token_id in self.added:
                    self.bytes[token_id] = self.added[token_id].encode("utf-8")
                elif piece is not None and all(char in _BYTE_DECODER for char in piece):
                    self.bytes[token_id] = bytes(_BYTE_DECODER[char] for char in piece)
                else:
                    self.bytes[token_id] = self.tokenizer.decode([token_id]).encode("utf-8")
        return [self.bytes[i] for i in token_ids]


_TABLES: dict[int, _TokenTable] = {}


def token_bytes(tokenizer, token_ids: Sequence[int]) -> list[bytes]:
    """The exact bytes of each token id (see the module docstring); `b"".join(...)` of a generated sequence
    without special tokens is its UTF-8 text."""
    table = _TABLES.get(id(tokenizer))
    if table is None or table.tokenizer is not tokenizer:
        table = _TABLES[id(tokenizer)] = _TokenTable(tokenizer)
    return table.lookup([int(i) for i in token_ids])


def token_text(pieces: Sequence[bytes]) -> list[str]:
    """Readable text of each token: its UTF-8 text, with bytes that are not valid UTF-8 on their own (part of a
    character split across tokens) shown as `\\xNN` escapes."""
    return [piece.decode("utf-8", errors="backslashreplace") for piece in pieces]
