"""vLLM's `/v1/embeddings` for a sentence-embedding model such as `BAAI/bge-small-en-v1.5`.

Each input gets 384 floats derived from a hash of the input alone, normalised to unit length as
bge's are; `encoding_format` "base64" sends the little-endian float32 bytes in base64, as vLLM does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
from dataclasses import dataclass
from typing import Any

from ._text import RequestError

__all__ = ["DIMENSIONS", "EmbeddingRequest", "embed", "embedding_json", "parse_embedding_request"]

#: The size of one bge-small-en vector.
DIMENSIONS = 384

_FORMATS = ("float", "base64")


@dataclass(frozen=True)
class EmbeddingRequest:
    """The inputs to embed (texts or token ids) and the format to send the vectors in."""

    inputs: list[str | list[int]]
    encoding_format: str


def parse_embedding_request(body: object, model: str = "bge-small-en") -> EmbeddingRequest:
    """Check an `/v1/embeddings` body: `input` is a string, token ids, or a list of either."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    encoding_format = body.get("encoding_format", "float")
    if encoding_format not in _FORMATS:
        raise RequestError(f"encoding_format must be one of {', '.join(_FORMATS)}, not {encoding_format!r}")
    if body.get("dimensions") is not None:
        raise RequestError(
            f'Model "{model}" does not support matryoshka representation, '
            "changing output dimensions will lead to poor results."
        )
    return EmbeddingRequest(_inputs(body.get("input")), encoding_format)


def _inputs(given: object) -> list[str | list[int]]:
    if isinstance(given, str) and given:
        return [given]
    if isinstance(given, list) and given:
        if all(_is_token(token) for token in given):
            return [list(given)]
        if all(_is_input(item) for item in given):
            return list(given)
    raise RequestError("input must be a non-empty string, a list of token ids, or a list of those")


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_input(value: object) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(_is_token(token) for token in value)


def embed(given: str | list[int]) -> list[float]:
    """The unit vector of one input: the same input always gets the same vector."""
    seed = hashlib.sha256(json.dumps(given).encode()).digest()
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(DIMENSIONS)]
    norm = math.sqrt(sum(value * value for value in vector))
    # Round through float32, the precision vLLM sends, so both formats carry the same numbers.
    packed = struct.pack(f"<{DIMENSIONS}f", *(value / norm for value in vector))
    return list(struct.unpack(f"<{DIMENSIONS}f", packed))


def _tokens(given: str | list[int]) -> int:
    return len(given) if isinstance(given, list) else max(1, len(given.split())) + 2  # [CLS] and [SEP]


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embedding_json(embedding_id: str, created: int, model: str, request: EmbeddingRequest) -> dict[str, Any]:
    """The answer: one `embedding` per input, in order, and the tokens the inputs took."""
    data = [
        {"index": index, "object": "embedding", "embedding": _encoded(embed(given), request.encoding_format)}
        for index, given in enumerate(request.inputs)
    ]
    prompt_tokens = sum(_tokens(given) for given in request.inputs)
    return {
        "id": embedding_id,
        "object": "list",
        "created": created,
        "model": model,
        "data": data,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens,
            "completion_tokens": 0,
            "prompt_tokens_details": None,
        },
    }
