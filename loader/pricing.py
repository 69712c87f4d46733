"""The prices ``python -m loader plan`` uses: one table, US East (N. Virginia), each with its source.

Read on 2026-12-01. ``confirmed`` is True for figures read on the AWS pricing page itself (or stated
in AWS's own worked examples there); False for figures taken from secondary sources (named in
``source``), which the plan's output marks. Check https://aws.amazon.com/s3/pricing/ (tab "Vectors")
before a large load: prices change, and other regions differ (Europe (Frankfurt), for example, lists
0.064 USD/GB-month).

Units. AWS's worked examples on the pricing page compute with binary units: 4 bytes x 1,024
dimensions = "4 KB", and "6.17 KB x 250,000 vectors x 40 indexes = 59 GB" (61.7 million KiB / 2^20 =
58.8 GiB), and the query example's dollar figures come out only with 1 TB = 2^40 bytes. So a GB here
is 2^30 bytes and a TB 2^40 bytes.

What each S3 Vectors price is charged on (from the same page):

* storage: logical bytes per vector = vector data (4 bytes per dimension) + key (1 byte per character)
  + all metadata (filterable and non-filterable), per month;
* PUT: the logical bytes uploaded, with a minimum charge of 128 KB per PutVectors request ("you can
  batch multiple vectors per PUT request" to stay above it);
* query: 2.50 USD per million QueryVectors calls plus "data processed": the number of vectors in the
  queried index x their average size counting vector data, key and *filterable* metadata (the
  non-filterable chunk text is not counted), tiered by the index's vector count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

REGION = "us-east-1"
RETRIEVED = "2026-12-01"
S3_PRICING_URL = "https://aws.amazon.com/s3/pricing/"
EC2_PRICING_URL = "https://aws.amazon.com/ec2/pricing/on-demand/"
FARGATE_PRICING_URL = "https://aws.amazon.com/fargate/pricing/"

GB = 2**30
TB = 2**40
KB = 2**10


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str
    confirmed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_S3_PAGE = f"{S3_PRICING_URL} (Vectors), US East (N. Virginia) pricing examples"

PRICES: dict[str, Price] = {
    "s3vectors_storage_per_gb_month": Price(
        0.06, "USD per GB-month of logical storage (vector data + key + all metadata)", _S3_PAGE, True
    ),
    "s3vectors_put_per_gb": Price(
        0.20, "USD per GB uploaded (logical bytes)", _S3_PAGE, True, "minimum charge of 128 KB per PutVectors request"
    ),
    "s3vectors_query_per_million": Price(2.50, "USD per million QueryVectors requests", _S3_PAGE, True),
    "s3vectors_query_tb_first_100k": Price(
        0.004, "USD per TB processed, for the first 100 thousand vectors of the queried index", _S3_PAGE, True
    ),
    "s3vectors_query_tb_over_100k": Price(
        0.002,
        "USD per TB processed, for the vectors of the queried index above 100 thousand (up to 10 million)",
        _S3_PAGE,
        True,
    ),
    "s3vectors_query_tb_over_10m": Price(
        0.0004,
        "USD per TB processed, for the vectors of the queried index above 10 million",
        "secondary: AWS announced on 2026-06-16 that data-processed charges of indexes over 10 million vectors "
        "fell by up to 80% (https://dev.classmethod.jp/en/articles/20260616-s3-vectors-query-charges/); the "
        "0.0004 figure is from a third-party summary of the pricing page",
        False,
        "if this tier does not apply, query data above 10 million vectors costs 5x the figure shown",
    ),
    "ec2_g6_xlarge_per_hour": Price(
        0.8048,
        "USD per instance-hour, g6.xlarge (1 NVIDIA L4, 4 vCPUs, 16 GiB), Linux on-demand",
        f"secondary (a price quote dated 2026-09-26); check {EC2_PRICING_URL}",
        False,
        "spot capacity (batchSpot=true) is typically well below this",
    ),
    "ec2_g5_xlarge_per_hour": Price(
        1.006,
        "USD per instance-hour, g5.xlarge (1 NVIDIA A10G, 4 vCPUs, 16 GiB), Linux on-demand",
        f"secondary (an EC2 pricing article, June 2026); check {EC2_PRICING_URL}",
        False,
    ),
    "fargate_per_vcpu_hour": Price(
        0.04048,
        "USD per vCPU-hour, Fargate Linux/x86",
        f"secondary (several sources agree); check {FARGATE_PRICING_URL}",
        False,
    ),
    "fargate_per_gb_hour": Price(
        0.004445, "USD per GB-hour of memory, Fargate Linux/x86", f"secondary; check {FARGATE_PRICING_URL}", False
    ),
}

# Tier boundaries of query data processed (vectors in the queried index).
QUERY_TIER_1_VECTORS = 100_000
QUERY_TIER_2_VECTORS = 10_000_000
PUT_MINIMUM_BYTES = 128 * KB


def price(name: str) -> float:
    return PRICES[name].usd


def query_cost_per_query(index_vectors: float, bytes_per_vector: float) -> tuple[float, float]:
    """(TB processed, USD) of one QueryVectors call on an index of ``index_vectors`` vectors.

    ``bytes_per_vector`` counts vector data, key and filterable metadata. The API charge is not included.
    """
    tier1 = min(index_vectors, QUERY_TIER_1_VECTORS)
    tier2 = min(max(index_vectors - QUERY_TIER_1_VECTORS, 0), QUERY_TIER_2_VECTORS - QUERY_TIER_1_VECTORS)
    tier3 = max(index_vectors - QUERY_TIER_2_VECTORS, 0)
    usd = (
        tier1 * bytes_per_vector / TB * price("s3vectors_query_tb_first_100k")
        + tier2 * bytes_per_vector / TB * price("s3vectors_query_tb_over_100k")
        + tier3 * bytes_per_vector / TB * price("s3vectors_query_tb_over_10m")
    )
    return index_vectors * bytes_per_vector / TB, usd


def table() -> dict[str, Any]:
    """The whole table with its provenance, for ``--json`` output."""
    return {
        "region": REGION,
        "retrieved": RETRIEVED,
        "source": S3_PRICING_URL,
        "units": {"GB": GB, "TB": TB},
        "prices": {name: p.to_dict() for name, p in PRICES.items()},
    }
