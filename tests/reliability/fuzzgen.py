"""A seeded request generator over botocore's s3vectors model, for fuzzing the local endpoint.

For each request it picks an operation and builds its input from the operation's input shape: mostly
values that satisfy the shape (so the request reaches the operation's own logic: names of resources that
exist, vectors of the right dimension, real filters and metadata), and with some probability values that
break it (wrong types, out-of-range numbers, missing required members, unknown members, huge or odd
strings, NaN/Infinity, deep nesting, forged pagination tokens). The body is then sometimes corrupted at the
byte level. Same seed, same requests.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from botocore.model import Shape

from s3vectors_local.validation import service_model

BUCKETS = ["fuzz-bucket", "fuzz-other"]
INDEXES = ["fuzz-index", "fuzz-euclid"]
ACCOUNT, REGION = "123456789012", "us-east-1"
DIM = 4
KEYS = [f"k{i}" for i in range(20)]
META_KEYS = ["category", "chunk", "title", "text", "tags", "flag", "$weird", ""]
ODD_STRINGS = [
    "",
    " ",
    "a/b",
    "../../etc",
    "x" * 1025,
    "é",
    "日本",
    "🚀",
    "\x00",
    "\ud800x",
    "arn:aws:s3vectors:",
    "%2F..%2F",
    "NaN",
    "null",
    "-1",
    "1e309",
    "\\",
    "'\"",
    "<script>",
    "bucket/../index",
]
FILTER_OPS = [
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$startsWith",
    "$and",
    "$or",
    "$not",
    "$regex",
    "$nor",
    "",
]


@dataclass
class FuzzRequest:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    operation: str

    def describe(self) -> str:
        return f"{self.method} {self.path} {self.headers.get('Content-Type')} {self.body[:300]!r}"


def bucket_arn(name: str) -> str:
    return f"arn:aws:s3vectors:{REGION}:{ACCOUNT}:bucket/{name}"


class Generator:
    def __init__(self, seed: int, *, mutate: float = 0.25) -> None:
        self.rng = random.Random(seed)
        self.mutate = mutate
        self.model = service_model()
        self.operations = list(self.model.operation_names)

    # -- values ------------------------------------------------------------------------------------------------
    def odd_string(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return self.rng.choice(ODD_STRINGS)
        if r < 0.8:
            return "".join(chr(self.rng.randint(32, 0x2FFF)) for _ in range(self.rng.randint(0, 40)))
        return self.rng.choice("abc/.-_") * self.rng.randint(0, 3000)

    def scalar(self) -> Any:
        return self.rng.choice(
            [
                0,
                -1,
                1,
                2**31,
                2**63,
                -(2**63) - 1,
                1.5,
                -0.0,
                1e308,
                True,
                False,
                None,
                "x",
                self.odd_string(),
                [],
                {},
                "NaN",
                "Infinity",
                "-Infinity",
            ]
        )

    def junk(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth > 3 or r < 0.5:
            return self.scalar()
        if r < 0.75:
            return [self.junk(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.odd_string()[:20]: self.junk(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def vector_data(self, dim: int = DIM) -> list[Any]:
        r = self.rng.random()
        if r < 0.7:
            return [self.rng.uniform(-1, 1) for _ in range(dim)]
        if r < 0.8:
            return [0.0] * dim
        if r < 0.9:
            return [0.25] * self.rng.choice([0, 1, dim + 1, 4097])
        return [self.rng.choice([1.0, "NaN", "Infinity", 3.5e38, 1e39, -1e39, True, "1", None]) for _ in range(dim)]

    def metadata(self) -> Any:
        if self.rng.random() < 0.15:
            return self.junk()
        md: dict[str, Any] = {}
        for _ in range(self.rng.randint(0, 6)):
            key = self.rng.choice(META_KEYS)
            md[key] = self.rng.choice(
                [
                    self.rng.choice(["pets", "baggage", "refunds"]),
                    self.rng.randint(-5, 5),
                    self.rng.random() < 0.5,
                    [self.rng.choice(["a", "b"]), 1, True],
                    "t" * self.rng.choice([10, 2100, 41000]),
                    self.junk(),
                ]
            )
        if self.rng.random() < 0.05:
            md = {f"m{i}": i for i in range(self.rng.choice([49, 51, 200]))}
        return md

    def filter(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth > 4 or r < 0.1:
            return self.junk()
        if r < 0.3:
            op = self.rng.choice(["$and", "$or"])
            return {op: [self.filter(depth + 1) for _ in range(self.rng.randint(0, 3))]}
        if r < 0.35:  # several keys in one object
            return {self.rng.choice(META_KEYS): 1, self.rng.choice(META_KEYS): 2}
        if r < 0.45 and depth == 0:  # very deep: spliced into the body as text (json.dumps would recurse too far)
            return f"__DEEP_{self.rng.choice([50, 400, 450, 480, 3000])}__"
        key = self.rng.choice(META_KEYS)
        if r < 0.55:
            return {key: self.rng.choice(["pets", 1, True, 2.5, [1, 2], None, {}])}
        op = self.rng.choice(FILTER_OPS)
        operand = self.rng.choice(
            [
                "pets",
                3,
                -1.5,
                True,
                [],
                ["pets", 1, True],
                [[1]],
                {"$eq": 1},
                None,
                self.odd_string(),
            ]
        )
        return {key: {op: operand}}

    def token(self) -> str:
        kinds = ["vectors", "query", "buckets", "indexes", "nope"]
        payload: Any = {"t": self.rng.choice(kinds)}
        if self.rng.random() < 0.4:  # plausible: the right shape around a forged field
            payload.update(index=self.rng.randint(1, 6), seg=None, prefix="", bucket=self.rng.choice(BUCKETS))
            if self.rng.random() < 0.5:
                payload[self.rng.choice(["after", "offset", "session"])] = self.junk()
            raw = json.dumps(payload, default=str).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")
        for name in ("after", "index", "seg", "session", "offset", "prefix", "bucket"):
            if self.rng.random() < 0.5:
                payload[name] = self.junk()
        if self.rng.random() < 0.2:
            payload = self.junk()
        raw = json.dumps(payload, default=str).encode()
        if self.rng.random() < 0.1:
            raw = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(0, 40)))
        return base64.urlsafe_b64encode(raw).decode().rstrip("=") if self.rng.random() < 0.9 else self.odd_string()

    def name_for(self, member: str) -> Any:
        rng = self.rng
        good = rng.random() > self.mutate
        if member == "vectorBucketName":
            return rng.choice(BUCKETS) if good else self.odd_string()
        if member == "indexName":
            return rng.choice(INDEXES) if good else self.odd_string()
        if member in ("vectorBucketArn", "resourceArn"):
            base = bucket_arn(rng.choice(BUCKETS))
            if rng.random() < 0.4:
                base += f"/index/{rng.choice(INDEXES)}"
            return (
                base
                if good
                else rng.choice(
                    [
                        base + "/index/a/b",
                        base.replace("123456789012", "999999999999"),
                        "arn:aws:s3:::bucket",
                        self.odd_string(),
                        base + "/../x",
                    ]
                )
            )
        if member == "indexArn":
            arn = f"{bucket_arn(rng.choice(BUCKETS))}/index/{rng.choice(INDEXES)}"
            return arn if good else rng.choice([arn + "/x", bucket_arn("b"), self.odd_string()])
        return None

    # -- shapes ------------------------------------------------------------------------------------------------------
    def value(self, shape: Shape, member: str, depth: int = 0) -> Any:
        rng = self.rng
        if rng.random() < self.mutate / 4:
            return self.junk()
        special = self.name_for(member)
        if special is not None:
            return special
        if member == "nextToken":
            return self.token()
        if member == "filter":
            return self.filter()
        if member == "metadata":
            return self.metadata()
        if member == "float32":
            return self.vector_data()
        if member == "policy":
            return rng.choice(['{"Version":"2012-10-17","Statement":[]}', "not json", json.dumps(self.junk())])
        if shape.metadata.get("document"):
            return self.junk()
        kind = shape.type_name
        if kind == "structure":
            return self.structure(shape, depth + 1)
        if kind == "list":
            lo = shape.metadata.get("min", 0)
            hi = min(shape.metadata.get("max", 5), 12)
            n = rng.randint(lo, max(lo, hi)) if rng.random() > self.mutate else rng.choice([0, 1, hi + 1, 501])
            if member == "keys":
                return [rng.choice(KEYS) if rng.random() > 0.1 else self.odd_string() for _ in range(n)]
            return [self.value(shape.member, "item", depth + 1) for _ in range(n)]
        if kind == "map":
            return {self.odd_string()[:10] or "k": self.odd_string()[:10] for _ in range(rng.randint(0, 3))}
        if kind == "string":
            if shape.enum:
                return rng.choice(shape.enum) if rng.random() > self.mutate else self.odd_string()
            if member == "key":
                return rng.choice(KEYS) if rng.random() > 0.2 else self.odd_string()
            return rng.choice(["abc", "fuzz", "text"]) if rng.random() > self.mutate else self.odd_string()
        if kind in ("integer", "long"):
            lo, hi = shape.metadata.get("min", 0), shape.metadata.get("max", 100)
            if rng.random() > self.mutate:
                return rng.randint(lo, min(hi, lo + 50))
            return rng.choice([lo - 1, hi + 1, -(2**70), 2**70, 1.5, "3", None, True])
        if kind in ("float", "double"):
            return rng.uniform(-1, 1)
        if kind == "boolean":
            return rng.random() < 0.5 if rng.random() > self.mutate else rng.choice(["true", 1, None])
        return self.junk()

    def structure(self, shape: Shape, depth: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if depth > 6:
            return out
        members = shape.members
        union = shape.metadata.get("union")
        names = list(members)
        if union:
            names = [self.rng.choice(names)] if names else []
        for name in names:
            required = name in shape.required_members
            if required and self.rng.random() < self.mutate / 3:
                continue  # a required member left out
            if not required and self.rng.random() < 0.5:
                continue
            out[name] = self.value(members[name], name, depth)
        if self.rng.random() < 0.05:
            out[self.odd_string()[:15] or "extra"] = self.junk()  # unknown member
        return out

    # -- requests ------------------------------------------------------------------------------------------------
    def request(self, signed_headers: dict[str, str]) -> FuzzRequest:
        rng = self.rng
        op = rng.choice(self.operations)
        model = self.model.operation_model(op)
        params = self.structure(model.input_shape) if model.input_shape is not None else {}
        if rng.random() < 0.4:  # well-formed around one generated part, to reach the operations' own logic
            names = {"vectorBucketName": rng.choice(BUCKETS), "indexName": rng.choice(INDEXES)}
            if op == "QueryVectors":
                vector = [0.5, -0.25, 1.0, 0.1] if rng.random() < 0.8 else self.vector_data()
                params = {
                    **names,
                    "topK": rng.randint(1, 30),
                    "queryVector": {"float32": vector},
                    "filter": self.filter(),
                    "returnMetadata": rng.random() < 0.5,
                }
            elif op == "PutVectors":
                params = {
                    **names,
                    "vectors": [
                        {"key": rng.choice(KEYS), "data": {"float32": self.vector_data()}, "metadata": self.metadata()}
                        for _ in range(rng.randint(1, 3))
                    ],
                }
            elif op in ("ListVectors", "ListIndexes", "ListVectorBuckets"):
                params = (
                    {**names, "nextToken": self.token()} if op != "ListVectorBuckets" else {"nextToken": self.token()}
                )
        http = model.http
        path = http["requestUri"]
        method = http["method"]
        if "{resourceArn}" in path:
            arn = params.pop("resourceArn", self.name_for("resourceArn"))
            raw_arn = str(arn).encode("utf-8", "surrogatepass")
            safe = "" if rng.random() < 0.9 else "/:"
            path = path.replace("{resourceArn}", quote(raw_arn, safe=safe))
        if op == "UntagResource":
            keys = params.pop("tagKeys", [])
            if isinstance(keys, list) and keys:
                encoded = (quote(str(k).encode("utf-8", "surrogatepass"), safe="") for k in keys)
                path += "?" + "&".join(f"tagKeys={k}" for k in encoded)
            params = {}
        if method in ("GET", "DELETE") and rng.random() > 0.05:
            params = {}
        text = json.dumps(params, default=str) if params or method == "POST" else ""
        for depth in (50, 400, 450, 480, 3000):
            if f'"__DEEP_{depth}__"' not in text:
                continue
            deep = '{"category": "pets"}'
            for _ in range(depth):
                deep = '{"' + rng.choice(["$and", "$or"]) + '": [' + deep + "]}"
            text = text.replace(f'"__DEEP_{depth}__"', deep)
        body = text.encode("utf-8", "surrogatepass")
        headers = dict(signed_headers)
        r = rng.random()
        if r < 0.03:
            body = body[: rng.randint(0, len(body))]  # truncated
        elif r < 0.05:
            body = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
        elif r < 0.06:
            body = b"[" * 50_000  # nesting deeper than any parser's recursion
        elif r < 0.07:
            body = body.replace(b"0.", b"NaN", 1)
        if rng.random() < 0.03:
            headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded", "", "json"])
        if rng.random() < 0.03:
            method = rng.choice(["PUT", "PATCH", "GET", "HEAD", "OPTIONS"])
        if rng.random() < 0.02:
            path = rng.choice(
                ["/", "/Nope", "//PutVectors", "/PutVectors/extra", "/tags/", "/tags", "/%00", "/" + "A" * 5000]
            )
        return FuzzRequest(method, path, body, headers, op)
