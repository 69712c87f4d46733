"""The contract between the CDK stack and the loader, defined once.

The stack (``stacks/``) declares its outputs and the index's non-filterable metadata keys from the
names below; the loader reads the same names back from ``cdk-outputs.json`` (or CloudFormation's
``DescribeStacks``). Nothing here imports AWS CDK or boto3, so the loader can use it anywhere.
"""

from __future__ import annotations

from typing import Final

# --- Stack -----------------------------------------------------------------------------------
DEFAULT_STACK_NAME: Final = "S3VectorsDocSearch"

# --- Index shape (all-MiniLM-L6-v2: 384 dimensions, compared by cosine) -------------------------
DEFAULT_DIMENSION: Final = 384
DEFAULT_DISTANCE_METRIC: Final = "cosine"
DATA_TYPE: Final = "float32"
DISTANCE_METRICS: Final = ("cosine", "euclidean")

# --- Metadata keys ---------------------------------------------------------------------------
# The chunk's text is large and only ever returned, never filtered on. It must be declared
# non-filterable when the index is created (it can never be changed afterwards): filterable
# metadata is limited to 2 KB per vector, and chunk text stored as filterable metadata is the
# most reported failure of other S3 Vectors integrations (langchain-aws #693, llama_index #21062).
TEXT_METADATA_KEY: Final = "text"
NON_FILTERABLE_METADATA_KEYS: Final[tuple[str, ...]] = (TEXT_METADATA_KEY,)

# Filterable keys the loader writes on every chunk.
SOURCE_METADATA_KEY: Final = "source"  # document path relative to the corpus root
TITLE_METADATA_KEY: Final = "title"
SECTION_METADATA_KEY: Final = "section"
CHUNK_METADATA_KEY: Final = "chunk"  # ordinal of the chunk within its document
CHUNK_COUNT_METADATA_KEY: Final = "chunks"  # number of chunks of the document
CONTENT_HASH_METADATA_KEY: Final = "content_hash"  # hash of the whole document + chunking settings


# --- Stack outputs (names of the CloudFormation outputs, as in ``cdk-outputs.json``) -----------
class Outputs:
    """Output names of the stack. ``cdk deploy --outputs-file`` writes ``{stack: {name: value}}``."""

    VECTOR_BUCKET_NAME: Final = "VectorBucketName"
    VECTOR_BUCKET_ARN: Final = "VectorBucketArn"
    INDEX_NAME: Final = "IndexName"
    INDEX_ARN: Final = "IndexArn"
    DIMENSION: Final = "Dimension"
    DISTANCE_METRIC: Final = "DistanceMetric"
    NON_FILTERABLE_METADATA_KEYS: Final = "NonFilterableMetadataKeys"  # comma-separated
    WRITER_ROLE_ARN: Final = "WriterRoleArn"
    READER_ROLE_ARN: Final = "ReaderRoleArn"
    REGION: Final = "Region"

    ALL: Final[tuple[str, ...]] = (
        VECTOR_BUCKET_NAME,
        VECTOR_BUCKET_ARN,
        INDEX_NAME,
        INDEX_ARN,
        DIMENSION,
        DISTANCE_METRIC,
        NON_FILTERABLE_METADATA_KEYS,
        WRITER_ROLE_ARN,
        READER_ROLE_ARN,
        REGION,
    )


DEFAULT_OUTPUTS_FILE: Final = "cdk-outputs.json"
