"""A vector bucket with one index, and the grants that let other principals use it."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3vectors as s3vectors
from constructs import Construct

from loader import contract

# Actions, by what the loader does. Every S3 Vectors action used here supports resource-level
# permissions on the index or bucket ARN (Service Authorization Reference, "Actions defined by
# Amazon S3 Vectors": https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3vectors.html),
# so no statement needs Resource "*".
READ_INDEX_ACTIONS: tuple[str, ...] = (
    "s3vectors:GetIndex",
    # QueryVectors with a filter or returnMetadata=true also needs GetVectors
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_S3VectorBuckets_QueryVectors.html).
    "s3vectors:GetVectors",
    "s3vectors:QueryVectors",
)
WRITE_INDEX_ACTIONS: tuple[str, ...] = (
    "s3vectors:DeleteVectors",  # stale chunks and removed documents
    "s3vectors:GetIndex",  # the loader checks dimension, metric and non-filterable keys first
    "s3vectors:GetVectors",  # ListVectors with returnMetadata needs it too
    "s3vectors:ListVectors",  # the sync state lives in the index
    "s3vectors:PutVectors",
)
WRITE_BUCKET_ACTIONS: tuple[str, ...] = ("s3vectors:GetVectorBucket",)
S3VECTORS_ENCRYPTION_CONTEXT_KEYS: tuple[str, ...] = ("aws:s3vectors:arn", "aws:s3vectors:resource-id")


class VectorStore(Construct):
    """An ``AWS::S3Vectors::VectorBucket`` holding one ``AWS::S3Vectors::Index``.

    Without names, CloudFormation generates them, so several copies of the stack can coexist.
    The index names its bucket through the bucket's ARN attribute: that reference is what makes
    CloudFormation create the bucket first and delete the index first (a bucket can only be
    deleted once it holds no index).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dimension: int,
        distance_metric: str,
        non_filterable_metadata_keys: Sequence[str],
        bucket_name: str | None = None,
        index_name: str | None = None,
        kms_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        self.kms_key = kms_key
        encryption = (
            {"sse_type": "aws:kms", "kms_key_arn": kms_key.key_arn} if kms_key is not None else {"sse_type": "AES256"}
        )
        self.bucket = s3vectors.CfnVectorBucket(
            self,
            "Bucket",
            vector_bucket_name=bucket_name,
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(**encryption),
        )
        self.index = s3vectors.CfnIndex(
            self,
            "Index",
            vector_bucket_arn=self.bucket.attr_vector_bucket_arn,
            index_name=index_name,
            data_type=contract.DATA_TYPE,
            dimension=dimension,
            distance_metric=distance_metric,
            metadata_configuration=s3vectors.CfnIndex.MetadataConfigurationProperty(
                non_filterable_metadata_keys=list(non_filterable_metadata_keys)
            ),
        )
        for resource in (self.bucket, self.index):
            resource.apply_removal_policy(removal_policy)

        self.bucket_arn: str = self.bucket.attr_vector_bucket_arn
        self.index_arn: str = self.index.attr_index_arn
        # ARNs: arn:aws:s3vectors:REGION:ACCOUNT:bucket/BUCKET[/index/INDEX]; the names are the
        # path segments, which also covers names CloudFormation generated.
        self.bucket_name: str = bucket_name or Fn.select(1, Fn.split("/", self.bucket_arn))
        self.index_name: str = index_name or Fn.select(3, Fn.split("/", self.index_arn))

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Search: describe the index and query it with filters and returned metadata."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=list(READ_INDEX_ACTIONS), resource_arns=[self.index_arn]
        )
        if self.kms_key is not None:
            self.kms_key.grant_decrypt(grantee)
        return grant

    def grant_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """Sync: everything ``python -m loader`` needs to make the index match a folder."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=list(WRITE_INDEX_ACTIONS), resource_arns=[self.index_arn]
        )
        grant = grant.combine(
            iam.Grant.add_to_principal(
                grantee=grantee, actions=list(WRITE_BUCKET_ACTIONS), resource_arns=[self.bucket_arn]
            )
        )
        if self.kms_key is not None:
            # Named actions rather than grant_encrypt_decrypt(), which adds ReEncrypt* and
            # GenerateDataKey* wildcards that a vector writer never uses.
            self.kms_key.grant(grantee, "kms:Decrypt", "kms:GenerateDataKey")
        return grant


def create_vector_kms_key(scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> kms.Key:
    """A customer-managed key that S3 Vectors may use for background indexing.

    S3 Vectors' background indexing runs as the service principal ``indexing.s3vectors.amazonaws.com``,
    which the key policy must allow to decrypt, limited to vector buckets of this account and to
    S3 Vectors' encryption context; without it, index creation fails with "Insufficient access to
    perform asynchronous indexing"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-data-encryption.html; the same
    statement as AWS's generative-ai-cdk-constructs emits).
    """
    key = kms.Key(
        scope,
        construct_id,
        description="Encrypts the S3 Vectors bucket and index of the document search stack",
        enable_key_rotation=True,
        pending_window=Duration.days(30),
        removal_policy=removal_policy,
    )
    account, region, partition = key.stack.account, key.stack.region, key.stack.partition
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowS3VectorsIndexingService",
            principals=[iam.ServicePrincipal("indexing.s3vectors.amazonaws.com")],
            actions=["kms:Decrypt"],
            resources=["*"],  # in a key policy, "*" means this key
            conditions={
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:s3vectors:{region}:{account}:bucket/*"},
                "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": list(S3VECTORS_ENCRYPTION_CONTEXT_KEYS)},
            },
        )
    )
    return key
