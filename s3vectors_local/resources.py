"""Vector buckets, indexes, bucket policies, tags and index modes."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from s3vectors_local import limits, tokens
from s3vectors_local.core import ServiceBase, parse_arn
from s3vectors_local.errors import ConflictError, NotFoundError, QuotaExceededError, ValidationError
from s3vectors_local.store import Store


def _encryption(params: dict[str, Any], path: str) -> tuple[str, str | None] | None:
    """(sseType, kmsKeyArn) from an encryptionConfiguration, or None when absent.

    kmsKeyArn "is allowed if and only if sseType is set to aws:kms" (model EncryptionConfiguration).
    """
    cfg = params.get("encryptionConfiguration")
    if cfg is None:
        return None
    sse = cfg.get("sseType", "AES256")
    kms = cfg.get("kmsKeyArn")
    if sse == "aws:kms" and not kms:
        raise ValidationError.at(f"{path}/kmsKeyArn", "kmsKeyArn is required when sseType is aws:kms")
    if sse != "aws:kms" and kms:
        raise ValidationError.at(f"{path}/kmsKeyArn", "kmsKeyArn is allowed only when sseType is aws:kms")
    return sse, kms


def _encryption_out(sse: str, kms: str | None) -> dict[str, str]:
    out = {"sseType": sse}
    if kms:
        out["kmsKeyArn"] = kms
    return out


def _check_tags(tags: dict[str, str], path: str) -> None:
    if len(tags) > limits.MAX_TAGS:
        raise ValidationError.at(path, f"A resource can have at most {limits.MAX_TAGS} tags")


def _page(rows: list[sqlite3.Row], limit: int) -> tuple[list[sqlite3.Row], bool]:
    return rows[:limit], len(rows) > limit


class ResourceOps(ServiceBase):
    # -- vector buckets ------------------------------------------------------------------------------
    def CreateVectorBucket(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["vectorBucketName"]
        if not limits.BUCKET_NAME_RE.fullmatch(name):
            raise ValidationError.at(
                "/vectorBucketName",
                "Vector bucket names must be 3-63 characters of lowercase letters, numbers and hyphens, "
                "beginning and ending with a letter or number",
            )
        sse, kms = _encryption(p, "/encryptionConfiguration") or ("AES256", None)
        tags = p.get("tags") or {}
        _check_tags(tags, "/tags")
        now = self.clock()
        # Buckets created on or after 2026-09-30 give new indexes ENHANCED mode (limits.py).
        mode = "ENHANCED" if now >= limits.ENHANCED_DEFAULT_SINCE.timestamp() else "CLASSIC"
        arn = self.bucket_arn(name)
        with self.lock.write(), self.store.write() as conn:
            if Store.bucket(conn, name) is not None:
                raise ConflictError(f"A vector bucket with the name {name} already exists")
            if Store.count(conn, "SELECT count(*) FROM buckets") >= limits.MAX_BUCKETS:
                raise QuotaExceededError(f"You can have at most {limits.MAX_BUCKETS} vector buckets per Region")
            conn.execute(
                "INSERT INTO buckets (name, arn, created, sse_type, kms_key_arn, default_index_mode) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, arn, now, sse, kms, mode),
            )
            Store.set_tags(conn, arn, tags)
        return {"vectorBucketArn": arn}

    def GetVectorBucket(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.read(), self.store.read() as conn:
            b = self.get_bucket(conn, p)
        return {
            "vectorBucket": {
                "vectorBucketName": b["name"],
                "vectorBucketArn": b["arn"],
                "creationTime": b["created"],
                "encryptionConfiguration": _encryption_out(b["sse_type"], b["kms_key_arn"]),
                "defaultIndexMode": b["default_index_mode"],
            }
        }

    def ListVectorBuckets(self, p: dict[str, Any]) -> dict[str, Any]:
        prefix = p.get("prefix", "")
        limit = p.get("maxResults", limits.LIST_DEFAULT_PAGE)
        after = ""
        if p.get("nextToken"):
            tok = tokens.decode(p["nextToken"], "buckets", after=str)
            if tok.get("prefix") != prefix:
                raise ValidationError.at("/nextToken", "The pagination token does not match the prefix")
            after = str(tok["after"])
        with self.lock.read(), self.store.read() as conn:
            rows, more = _page(Store.list_buckets(conn, prefix, after, limit + 1), limit)
        out: dict[str, Any] = {
            "vectorBuckets": [
                {"vectorBucketName": r["name"], "vectorBucketArn": r["arn"], "creationTime": r["created"]}
                for r in rows
            ]
        }
        if more:
            out["nextToken"] = tokens.encode("buckets", after=rows[-1]["name"], prefix=prefix)
        return out

    def DeleteVectorBucket(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.write(), self.store.write() as conn:
            b = self.get_bucket(conn, p)
            if Store.count(conn, "SELECT count(*) FROM indexes WHERE bucket = ?", b["name"]):
                # "All vector indexes in the vector bucket must be deleted before the vector bucket can be
                # deleted" (model DeleteVectorBucket documentation).
                raise ConflictError(f"The vector bucket {b['name']} is not empty: delete its indexes first")
            conn.execute("DELETE FROM tags WHERE arn = ?", (b["arn"],))
            conn.execute("DELETE FROM buckets WHERE name = ?", (b["name"],))
        return {}

    def PutVectorBucketDefaultIndexMode(self, p: dict[str, Any]) -> dict[str, Any]:
        mode = p["defaultIndexMode"]
        with self.lock.write(), self.store.write() as conn:
            b = self.get_bucket(conn, p)
            if mode == "CLASSIC" and not self.bucket_created_before_enhanced(b):
                raise ValidationError.at(
                    "/defaultIndexMode",
                    "CLASSIC is available only for vector buckets created before September 30, 2026",
                )
            conn.execute("UPDATE buckets SET default_index_mode = ? WHERE name = ?", (mode, b["name"]))
        return {}

    # -- bucket policies -------------------------------------------------------------------------------
    def PutVectorBucketPolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            doc = json.loads(p["policy"])
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or "Statement" not in doc:
            raise ValidationError.at("/policy", "The policy is not a valid JSON policy document")
        with self.lock.write(), self.store.write() as conn:
            b = self.get_bucket(conn, p)
            conn.execute("UPDATE buckets SET policy = ? WHERE name = ?", (p["policy"], b["name"]))
        return {}

    def GetVectorBucketPolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.read(), self.store.read() as conn:
            b = self.get_bucket(conn, p)
        if b["policy"] is None:
            raise NotFoundError(f"The vector bucket {b['name']} has no bucket policy")
        return {"policy": b["policy"]}

    def DeleteVectorBucketPolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.write(), self.store.write() as conn:
            b = self.get_bucket(conn, p)
            conn.execute("UPDATE buckets SET policy = NULL WHERE name = ?", (b["name"],))
        return {}

    # -- indexes ------------------------------------------------------------------------------------------
    def CreateIndex(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["indexName"]
        if not limits.INDEX_NAME_RE.fullmatch(name):
            raise ValidationError.at(
                "/indexName",
                "Vector index names must be 3-63 characters of lowercase letters, numbers, hyphens and dots, "
                "beginning and ending with a letter or number",
            )
        md_cfg = p.get("metadataConfiguration") or {}
        non_filterable = md_cfg.get("nonFilterableMetadataKeys") or []
        if len(set(non_filterable)) != len(non_filterable):
            raise ValidationError.at(
                "/metadataConfiguration/nonFilterableMetadataKeys", "Non-filterable metadata keys must be unique"
            )
        text_search = self._text_search_configs(md_cfg.get("textSearchConfigurations") or [], [])
        enc = _encryption(p, "/encryptionConfiguration")
        tags = p.get("tags") or {}
        _check_tags(tags, "/tags")
        with self.lock.write(), self.store.write() as conn:
            b = self.get_bucket(conn, p)
            if text_search and b["default_index_mode"] != "ENHANCED":
                raise ValidationError.at(
                    "/metadataConfiguration/textSearchConfigurations",
                    "Text search configurations require a vector index in ENHANCED mode",
                )
            if Store.index(conn, b["name"], name) is not None:
                raise ConflictError(f"An index with the name {name} already exists in {b['name']}")
            if Store.count(conn, "SELECT count(*) FROM indexes WHERE bucket = ?", b["name"]) >= (
                limits.MAX_INDEXES_PER_BUCKET
            ):
                raise QuotaExceededError(f"A vector bucket can hold at most {limits.MAX_INDEXES_PER_BUCKET} indexes")
            sse, kms = enc or (b["sse_type"], b["kms_key_arn"])  # indexes inherit the bucket's encryption
            arn = self.index_arn(b["name"], name)
            conn.execute(
                "INSERT INTO indexes (bucket, name, arn, created, data_type, dimension, metric, non_filterable, "
                "text_search, sse_type, kms_key_arn, index_mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    b["name"], name, arn, self.clock(), p["dataType"], p["dimension"], p["distanceMetric"],
                    json.dumps(non_filterable), json.dumps(text_search), sse, kms, b["default_index_mode"],
                ),
            )
            Store.set_tags(conn, arn, tags)
        return {"indexArn": arn}

    @staticmethod
    def _text_search_configs(add: list[dict[str, Any]], existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = [c["metadataKey"] for c in existing]
        out = list(existing)
        for c in add:
            if c["metadataKey"] in keys:
                raise ConflictError(f"A text search configuration for {c['metadataKey']!r} already exists")
            keys.append(c["metadataKey"])
            cfg = {"metadataKey": c["metadataKey"], "status": "ACTIVE"}
            if c.get("language"):
                cfg["language"] = c["language"]
            out.append(cfg)
        if len(out) > 10:  # model MetadataConfigurationTextSearchConfigurationsList max 10
            raise ValidationError.at("/textSearchConfigurations", "An index can have at most 10 text search keys")
        return out

    @staticmethod
    def index_out(r: sqlite3.Row) -> dict[str, Any]:
        md: dict[str, Any] = {}
        if json.loads(r["non_filterable"]):
            md["nonFilterableMetadataKeys"] = json.loads(r["non_filterable"])
        if json.loads(r["text_search"]):
            md["textSearchConfigurations"] = json.loads(r["text_search"])
        out: dict[str, Any] = {
            "vectorBucketName": r["bucket"],
            "indexName": r["name"],
            "indexArn": r["arn"],
            "creationTime": r["created"],
            "dataType": r["data_type"],
            "dimension": r["dimension"],
            "distanceMetric": r["metric"],
            "encryptionConfiguration": _encryption_out(r["sse_type"], r["kms_key_arn"]),
            "indexMode": r["index_mode"],
        }
        if md:
            out["metadataConfiguration"] = md
        return out

    def GetIndex(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.read(), self.store.read() as conn:
            return {"index": self.index_out(self.get_index(conn, p))}

    def ListIndexes(self, p: dict[str, Any]) -> dict[str, Any]:
        prefix = p.get("prefix", "")
        limit = p.get("maxResults", limits.LIST_DEFAULT_PAGE)
        after = ""
        with self.lock.read(), self.store.read() as conn:
            b = self.get_bucket(conn, p)
            if p.get("nextToken"):
                tok = tokens.decode(p["nextToken"], "indexes", after=str)
                if (tok.get("prefix"), tok.get("bucket")) != (prefix, b["name"]):
                    raise ValidationError.at("/nextToken", "The pagination token does not match the request")
                after = str(tok["after"])
            rows, more = _page(Store.list_indexes(conn, b["name"], prefix, after, limit + 1), limit)
        out: dict[str, Any] = {
            "indexes": [
                {"vectorBucketName": r["bucket"], "indexName": r["name"], "indexArn": r["arn"],
                 "creationTime": r["created"]}
                for r in rows
            ]
        }
        if more:
            out["nextToken"] = tokens.encode("indexes", after=rows[-1]["name"], prefix=prefix, bucket=b["name"])
        return out

    def DeleteIndex(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.write():
            with self.store.write() as conn:
                r = self.get_index(conn, p)
                # "All vectors stored in the index are permanently deleted" (s3-vectors-index-delete.html).
                conn.execute("DELETE FROM vectors WHERE index_id = ?", (r["id"],))
                conn.execute("DELETE FROM tags WHERE arn = ?", (r["arn"],))
                conn.execute("DELETE FROM indexes WHERE id = ?", (r["id"],))
            self.forget_matrix(r["id"])
        return {}

    def UpdateIndexMode(self, p: dict[str, Any]) -> dict[str, Any]:
        mode = p["indexMode"]
        with self.lock.write(), self.store.write() as conn:
            r = self.get_index(conn, p)
            b = Store.bucket(conn, r["bucket"])
            assert b is not None
            if mode == "CLASSIC" and not self.bucket_created_before_enhanced(b):
                raise ValidationError.at(
                    "/indexMode",
                    "CLASSIC is available only for indexes in vector buckets created before September 30, 2026",
                )
            if mode == "CLASSIC" and json.loads(r["text_search"]):
                raise ValidationError.at("/indexMode", "An index with text search configurations must stay ENHANCED")
            conn.execute("UPDATE indexes SET index_mode = ? WHERE id = ?", (mode, r["id"]))
        return {}

    def UpdateMetadataConfiguration(self, p: dict[str, Any]) -> dict[str, Any]:
        add = (p.get("add") or {}).get("textSearchConfigurations")
        delete = (p.get("delete") or {}).get("textSearchConfigurations")
        if (add is None) == (delete is None):
            raise ValidationError.at("/add", "Specify either add or delete, but not both")
        with self.lock.write(), self.store.write() as conn:
            r = self.get_index(conn, p)
            if r["index_mode"] != "ENHANCED":
                raise ValidationError.at("/", "The vector index must be in ENHANCED mode")
            existing = json.loads(r["text_search"])
            if add is not None:
                configs = self._text_search_configs(add, existing)
            else:
                gone = [c["metadataKey"] for c in delete or []]
                missing = sorted(set(gone) - {c["metadataKey"] for c in existing})
                if missing:
                    raise NotFoundError(f"No text search configuration for metadata keys {missing}")
                configs = [c for c in existing if c["metadataKey"] not in gone]
            conn.execute("UPDATE indexes SET text_search = ? WHERE id = ?", (json.dumps(configs), r["id"]))
        return {"indexArn": r["arn"]}

    # -- tags ------------------------------------------------------------------------------------------------
    def _tagged(self, conn: sqlite3.Connection, arn: str) -> str:
        parts = self._own_arn(arn, "resourceArn")
        if parts["index"] is None:
            found = Store.bucket(conn, str(parts["bucket"]))
        else:
            found = Store.index(conn, str(parts["bucket"]), str(parts["index"]))
        if found is None:
            raise NotFoundError(f"The specified resource does not exist: {arn}")
        return str(found["arn"])

    def ListTagsForResource(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.read(), self.store.read() as conn:
            return {"tags": Store.tags(conn, self._tagged(conn, p["resourceArn"]))}

    def TagResource(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.write(), self.store.write() as conn:
            arn = self._tagged(conn, p["resourceArn"])
            merged = {**Store.tags(conn, arn), **p["tags"]}
            _check_tags(merged, "/tags")
            Store.set_tags(conn, arn, p["tags"])
        return {}

    def UntagResource(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock.write(), self.store.write() as conn:
            arn = self._tagged(conn, p["resourceArn"])
            conn.executemany("DELETE FROM tags WHERE arn = ? AND key = ?", [(arn, k) for k in p["tagKeys"]])
        return {}


__all__ = ["ResourceOps", "parse_arn"]
