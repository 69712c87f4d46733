"""Documented S3 Vectors limits, each with its source. Enforced by ``service`` and ``vectors``.

Limits that the botocore model already states (lengths, list sizes, ranges) are enforced from the
model itself by ``validation``; the ones here are those the model does not carry.
"""

from __future__ import annotations

import datetime as _dt
import re

LIMITS_PAGE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-limitations.html"

# Vector buckets per Region per account: 10,000; vector indexes per bucket: 10,000.
# Source: LIMITS_PAGE. Over it → ServiceQuotaExceededException (the model lists it for Create*).
MAX_BUCKETS = 10_000
MAX_INDEXES_PER_BUCKET = 10_000

# Dimension 1-4,096 (LIMITS_PAGE; the model's Dimension shape says the same and is what enforces it).
MAX_DIMENSION = 4096

# Vectors per PutVectors / DeleteVectors / GetVectors call: 500 / 500 / 100 (LIMITS_PAGE; the model's
# PutVectorsInputList, DeleteVectorsInputList and GetVectorsInputList carry the same max).
MAX_PUT_VECTORS = 500
MAX_DELETE_VECTORS = 500
MAX_GET_VECTORS = 100

# Total metadata per vector: up to 40 KB (filterable + non-filterable); filterable metadata per vector:
# up to 2 KB; metadata keys per vector: up to 50 (GA; 10 in preview). Source: LIMITS_PAGE.
# The service's own message for the 2 KB case is "Invalid record for key '<k>': Filterable metadata
# must have at most 2048 bytes" (langchain-aws issue #693, llama_index #21062), so KB = 1,024 bytes.
# AWS does not document how it counts; we count the UTF-8 bytes of the compact JSON encoding of the
# metadata object (for the filterable limit: of the object restricted to filterable keys). That
# counts keys, values and JSON punctuation, i.e. at least what AWS can count: a vector we accept is
# never larger than what AWS measures under any plausible rule that includes keys.
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50

# Non-filterable metadata keys per index: up to 10 (LIMITS_PAGE; model NonFilterableMetadataKeys max 10).
MAX_NON_FILTERABLE_KEYS = 10

# Request payload: up to 20 MiB (LIMITS_PAGE).
MAX_PAYLOAD_BYTES = 20 * 1024 * 1024

# ListVectors: up to 1,000 per page, default 500, and a page stops once the processed data passes
# 1 MB (model ListVectorsInput.maxResults documentation). "Processed" is read as the stored record
# (key + vector + metadata) whether or not the caller asked for data/metadata back.
LIST_VECTORS_DEFAULT_PAGE = 500
LIST_VECTORS_PAGE_BYTES = 1024 * 1024
# ListVectorBuckets / ListIndexes: up to 500 per page (LIMITS_PAGE); no documented default, we use 500.
LIST_DEFAULT_PAGE = 500

# Top-K. The GA limits page says "Top-K results per QueryVectors request: Up to 100". Since botocore
# 1.43.31 (2026-06-16) QueryVectors pages: "When topK exceeds the page size, results are returned across
# multiple pages" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-query.html), and the
# botocore changelog for that release says up to 10,000 results per query. The model's TopK has min 1
# and no max. We therefore accept topK 1-10,000 and return at most 100 per page (the old per-request
# cap), with a nextToken for the rest.
MAX_TOP_K = 10_000
QUERY_PAGE_SIZE = 100
# "Pagination tokens remain valid for several minutes after the query is executed" (s3-vectors-query).
QUERY_TOKEN_TTL_S = 300.0

# Write throughput per index: combined PutVectors+DeleteVectors requests up to 1,000/s and combined
# vectors inserted+deleted up to 2,500/s; over it → 429 TooManyRequestsException (LIMITS_PAGE).
WRITE_REQUESTS_PER_S = 1000.0
WRITE_VECTORS_PER_S = 2500.0

# Tags: "You can add up to 50 tags for each resource" (model TagResource documentation).
MAX_TAGS = 50

# Index modes (model IndexMode; https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-index-mode.html):
# buckets created before 2026-09-30 default to CLASSIC, later ones to ENHANCED; CLASSIC may be set only
# on indexes in buckets created before that date (model UpdateIndexMode documentation). ENHANCED indexes
# add the $startsWith operator; "confirm that your queries use 100 or fewer filter constraints" before
# moving an index to ENHANCED, so an ENHANCED query with more than 100 constraints is rejected.
ENHANCED_DEFAULT_SINCE = _dt.datetime(2026, 9, 30, tzinfo=_dt.UTC)
MAX_ENHANCED_FILTER_CONSTRAINTS = 100

# Names (https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-buckets-naming.html and
# .../s3-vectors-indexes.html "Vector index naming requirements"): 3-63 characters; bucket: lowercase
# letters, digits, hyphens; index: the same plus dots; both begin and end with a letter or digit.
BUCKET_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
INDEX_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
